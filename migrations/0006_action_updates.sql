-- 0006_action_updates: the action tracker's append-only progress notes, the index the list's
-- keyset order needs, and the status rules enforced underneath the API (ActionWorkflow): `done`
-- and `cancelled` are final, `cancelled` carries a reason, and only the moves the workflow
-- allows are accepted, even from psql.

CREATE TABLE action_updates (
    id              uuid PRIMARY KEY,
    action_id       uuid NOT NULL REFERENCES actions (id),
    note            text NOT NULL CHECK (length(note) BETWEEN 1 AND 4000),
    progress        integer CHECK (progress BETWEEN 0 AND 100),
    author_id       text NOT NULL CHECK (author_id <> ''),
    author_name     text NOT NULL CHECK (author_name <> ''),
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Newest first within one action (ids are UUIDv7, so id order is creation order).
CREATE INDEX action_updates_action_idx ON action_updates (action_id, id DESC);

CREATE FUNCTION action_updates_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'action updates are append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER action_updates_refuse_update BEFORE UPDATE OR DELETE ON action_updates
    FOR EACH ROW EXECUTE FUNCTION action_updates_refuse_change();

-- Every action has a due day (the API requires one); rows from before it get their creation day.
UPDATE actions SET due_date = created_at::date WHERE due_date IS NULL;
ALTER TABLE actions ALTER COLUMN due_date SET NOT NULL;
UPDATE actions SET owner_name = owner_id WHERE owner_name = '';
UPDATE actions SET assigned_by_name = assigned_by WHERE assigned_by_name = '';

-- The list's order: due day, then id.
DROP INDEX actions_due_idx;
CREATE INDEX actions_due_order_idx ON actions (due_date, id);
CREATE INDEX actions_briefing_ids_idx ON actions USING gin (briefing_ids);
CREATE INDEX actions_signal_ids_idx ON actions USING gin (signal_ids);

CREATE FUNCTION actions_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'actions are never deleted; cancel them' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.status = 'cancelled' AND coalesce(NEW.cancel_reason, '') = '' THEN
        RAISE EXCEPTION 'a cancelled action needs a reason' USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.status IS DISTINCT FROM NEW.status THEN
        IF NOT (
            (OLD.status = 'open' AND NEW.status IN ('in_progress', 'blocked', 'done', 'cancelled')) OR
            (OLD.status = 'in_progress' AND NEW.status IN ('open', 'blocked', 'done', 'cancelled')) OR
            (OLD.status = 'blocked' AND NEW.status IN ('open', 'in_progress', 'cancelled'))
        ) THEN
            RAISE EXCEPTION 'action status % cannot become %', OLD.status, NEW.status USING ERRCODE = 'check_violation';
        END IF;
    ELSIF TG_OP = 'UPDATE' AND OLD.status IN ('done', 'cancelled') AND NEW IS DISTINCT FROM OLD THEN
        RAISE EXCEPTION 'a % action is final', OLD.status USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER actions_guard BEFORE INSERT OR UPDATE OR DELETE ON actions
    FOR EACH ROW EXECUTE FUNCTION actions_guard();

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'sitrep_app') THEN
        GRANT SELECT, INSERT ON action_updates TO sitrep_app;
    END IF;
END;
$$;
