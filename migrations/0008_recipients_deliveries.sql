-- 0008_recipients_deliveries: who receives approved briefings, and the transactional outbox of
-- their deliveries. `distributeBriefing` writes the briefing's transition, one `deliveries` row per
-- active recipient (a snapshot of how to reach them) and the audit event in one transaction;
-- nothing is sent inside the request. The dispatch worker claims due rows with
-- `FOR UPDATE SKIP LOCKED` and records each attempt in `delivery_attempts` before calling the
-- provider, so a crash between the call and its record is reconciled, never sent twice.

CREATE TABLE recipients (
    id              uuid PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    title           text CHECK (length(title) <= 200),
    phone           text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    email           text CHECK (length(email) <= 254),
    language        text NOT NULL CHECK (language IN ('ar', 'en')),
    channels        text[] NOT NULL CHECK (
                        cardinality(channels) BETWEEN 1 AND 3
                        AND channels <@ ARRAY['whatsapp', 'sms', 'email']
                        AND array_position(channels, NULL) IS NULL),
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    CONSTRAINT recipients_phone_unique UNIQUE (phone),
    CONSTRAINT recipients_email_for_channel CHECK (NOT ('email' = ANY (channels)) OR email IS NOT NULL)
);

CREATE INDEX recipients_name_idx ON recipients (name, id);

CREATE TABLE deliveries (
    id              uuid PRIMARY KEY,
    briefing_id     uuid NOT NULL REFERENCES briefings (id),
    recipient_id    uuid NOT NULL REFERENCES recipients (id),
    -- How to reach them, as it was when the briefing was distributed.
    recipient_name  text NOT NULL,
    language        text NOT NULL CHECK (language IN ('ar', 'en')),
    phone           text NOT NULL,
    email           text,
    channels        text[] NOT NULL,
    status          text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'in_progress', 'delivered', 'failed')),
    channel         text CHECK (channel IN ('whatsapp', 'sms', 'email')),
    -- The worker's schedule: when this delivery next needs attention, and retries on this channel.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    retries         integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    CONSTRAINT deliveries_once UNIQUE (briefing_id, recipient_id)
);

CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE status IN ('queued', 'in_progress');
CREATE INDEX deliveries_briefing_idx ON deliveries (briefing_id, recipient_name, id);

-- States only move forward.
CREATE FUNCTION deliveries_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'deliveries are never deleted' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.status IN ('delivered', 'failed') AND NEW.status IS DISTINCT FROM OLD.status THEN
        RAISE EXCEPTION 'delivery % is % (final)', OLD.id, OLD.status USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.status = 'in_progress' AND NEW.status = 'queued' THEN
        RAISE EXCEPTION 'delivery % cannot go back to queued', OLD.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER deliveries_forward_only BEFORE UPDATE OR DELETE ON deliveries
    FOR EACH ROW EXECUTE FUNCTION deliveries_forward_only();

CREATE TABLE delivery_attempts (
    id                  uuid PRIMARY KEY,
    delivery_id         uuid NOT NULL REFERENCES deliveries (id),
    channel             text NOT NULL CHECK (channel IN ('whatsapp', 'sms', 'email')),
    status              text NOT NULL DEFAULT 'queued'
                            CHECK (status IN ('queued', 'sent', 'delivered', 'read', 'undelivered', 'failed', 'timed_out')),
    provider_message_id text UNIQUE,
    error_code          text,
    error_message       text,
    attempted_at        timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX delivery_attempts_delivery_idx ON delivery_attempts (delivery_id, attempted_at, id);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'sitrep_app') THEN
        GRANT SELECT, INSERT, UPDATE ON recipients, deliveries, delivery_attempts TO sitrep_app;
    END IF;
END;
$$;
