-- 0002_briefing_workflow: the daily briefing's content, revisions and approval workflow.
--
-- The workflow is enforced here as well as in the application: a trigger refuses any status
-- change that is not one of the workflow's transitions, any content change outside `draft`,
-- any change at all to a distributed briefing, and approval by the submitter (four eyes),
-- even from psql. Revisions are append-only.

ALTER TABLE briefings
    ADD COLUMN title_ar          text NOT NULL DEFAULT '',
    ADD COLUMN summary           text NOT NULL DEFAULT '',
    ADD COLUMN summary_ar        text NOT NULL DEFAULT '',
    ADD COLUMN sections          jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(sections) = 'array'),
    ADD COLUMN model_version     text,
    ADD COLUMN revision          integer NOT NULL DEFAULT 1 CHECK (revision >= 1),
    -- SHA-256 (hex) of the content's canonical JSON; frozen once approved
    ADD COLUMN content_hash      text NOT NULL DEFAULT '' ,
    ADD COLUMN created_by        text NOT NULL DEFAULT 'system',
    ADD COLUMN created_by_id     text NOT NULL DEFAULT 'system',
    ADD COLUMN submitted_by      text,
    ADD COLUMN submitted_by_id   text,
    ADD COLUMN submitted_at      timestamptz,
    ADD COLUMN approved_by       text,
    ADD COLUMN approved_by_id    text,
    ADD COLUMN approved_at       timestamptz,
    ADD COLUMN distributed_at    timestamptz,
    ADD COLUMN return_reason     text;

ALTER TABLE briefings
    ADD CONSTRAINT briefings_approval_recorded CHECK (
        (status IN ('approved', 'distributed')) = (approved_at IS NOT NULL AND approved_by_id IS NOT NULL)),
    ADD CONSTRAINT briefings_submission_recorded CHECK (
        status = 'draft' OR (submitted_at IS NOT NULL AND submitted_by_id IS NOT NULL)),
    ADD CONSTRAINT briefings_four_eyes CHECK (approved_by_id IS NULL OR approved_by_id <> submitted_by_id);

CREATE INDEX briefings_date_idx ON briefings (briefing_date DESC, id DESC);

CREATE TABLE briefing_revisions (
    id              uuid PRIMARY KEY DEFAULT sitrep_uuid_v7(),
    briefing_id     uuid NOT NULL REFERENCES briefings (id),
    revision        integer NOT NULL CHECK (revision >= 1),
    title           text NOT NULL,
    title_ar        text NOT NULL,
    summary         text NOT NULL,
    summary_ar      text NOT NULL,
    sections        jsonb NOT NULL,
    content_hash    text NOT NULL,
    change_note     text,
    created_by      text NOT NULL,
    created_by_id   text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT briefing_revisions_unique UNIQUE (briefing_id, revision)
);

-- The workflow, in the database's own words.
CREATE FUNCTION briefings_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'distributed' THEN
        RAISE EXCEPTION 'briefing % is distributed: it cannot change', OLD.id USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status <> OLD.status AND NOT (
           (OLD.status = 'draft' AND NEW.status = 'pending_approval')
        OR (OLD.status = 'pending_approval' AND NEW.status IN ('draft', 'approved'))
        OR (OLD.status = 'approved' AND NEW.status = 'distributed')) THEN
        RAISE EXCEPTION 'briefing %: % -> % is not a workflow transition', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    -- Content changes only while a draft, and never together with a state change.
    IF (NEW.title, NEW.title_ar, NEW.summary, NEW.summary_ar, NEW.sections, NEW.content_hash, NEW.briefing_date, NEW.revision)
       IS DISTINCT FROM
       (OLD.title, OLD.title_ar, OLD.summary, OLD.summary_ar, OLD.sections, OLD.content_hash, OLD.briefing_date, OLD.revision)
       AND (OLD.status <> 'draft' OR NEW.status <> 'draft') THEN
        RAISE EXCEPTION 'briefing % is %: its content is frozen', OLD.id, OLD.status USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.id <> OLD.id OR NEW.created_at <> OLD.created_at OR NEW.created_by_id <> OLD.created_by_id THEN
        RAISE EXCEPTION 'briefing %: identity columns cannot change', OLD.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER briefings_guard BEFORE UPDATE ON briefings FOR EACH ROW EXECUTE FUNCTION briefings_guard();

CREATE FUNCTION briefings_refuse_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'briefings are never deleted' USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER briefings_refuse_delete BEFORE DELETE ON briefings FOR EACH ROW EXECUTE FUNCTION briefings_refuse_delete();

CREATE FUNCTION briefing_revisions_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'briefing revisions are append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER briefing_revisions_refuse_update BEFORE UPDATE OR DELETE ON briefing_revisions
    FOR EACH ROW EXECUTE FUNCTION briefing_revisions_refuse_change();
