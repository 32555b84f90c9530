-- 0009_dispatch_worker: what the dispatch worker needs beside the outbox of 0008.
--
-- A worker claims due deliveries (`FOR UPDATE SKIP LOCKED`), stamps them with a lease token and
-- pushes `next_attempt_at` past the longest provider call, then works on them without holding a
-- lock. Every later write checks the token, so a worker that lost its lease (it was too slow, or
-- died and another took over) changes nothing. The lease is released by setting the token back
-- to NULL with the time the delivery next needs attention.

ALTER TABLE deliveries ADD COLUMN lease_token uuid;

-- Whether a failed attempt may be tried again on the same channel (429, 5xx, timeouts) or is
-- final for its channel (any other 4xx, `failed`/`undelivered` reports, time-outs of delivery).
ALTER TABLE delivery_attempts ADD COLUMN retryable boolean NOT NULL DEFAULT false;
-- When WhatsApp reported the message read.
ALTER TABLE delivery_attempts ADD COLUMN read_at timestamptz;

CREATE INDEX delivery_attempts_open_idx ON delivery_attempts (delivery_id) WHERE status IN ('queued', 'sent');

-- Attempts only move forward: queued → sent → delivered → read, with undelivered, failed and
-- timed_out as ends; a time-out may still be followed by a late `delivered`/`read` report. The
-- provider's message id, once known, never changes.
CREATE FUNCTION delivery_attempts_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'delivery attempts are never deleted' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.provider_message_id IS NOT NULL AND NEW.provider_message_id IS DISTINCT FROM OLD.provider_message_id THEN
        RAISE EXCEPTION 'attempt % already has provider message %', OLD.id, OLD.provider_message_id USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
        (OLD.status = 'queued')
        OR (OLD.status = 'sent' AND NEW.status IN ('delivered', 'read', 'undelivered', 'failed', 'timed_out'))
        OR (OLD.status = 'delivered' AND NEW.status = 'read')
        OR (OLD.status = 'timed_out' AND NEW.status IN ('delivered', 'read'))
    ) THEN
        RAISE EXCEPTION 'attempt % cannot go from % to %', OLD.id, OLD.status, NEW.status USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER delivery_attempts_forward_only BEFORE UPDATE OR DELETE ON delivery_attempts
    FOR EACH ROW EXECUTE FUNCTION delivery_attempts_forward_only();
