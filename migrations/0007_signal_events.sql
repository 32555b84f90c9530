-- 0007_signal_events: the live stream's event log. One row per signal event (created, triaged),
-- written in the same transaction as the change. `seq` is the event id clients resume from
-- (`Last-Event-ID`). Writers insert here after appending their audit event, whose trigger holds
-- the audit chain's head row until commit, so events commit in `seq` order and a reader that has
-- seen `seq` n never later finds a smaller one appear. Rows older than a day are pruned by the
-- service (replay only reaches back 10 minutes).

CREATE TABLE signal_events (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('signal.created', 'signal.triaged')),
    signal_id       uuid NOT NULL REFERENCES signals (id),
    occurred_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX signal_events_time_idx ON signal_events (occurred_at);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'sitrep_app') THEN
        GRANT SELECT, INSERT, DELETE ON signal_events TO sitrep_app;
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO sitrep_app;
    END IF;
END;
$$;
