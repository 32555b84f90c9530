-- 0005_actions: the action tracker's columns beyond the first slice's minimal table.

ALTER TABLE actions
    ADD COLUMN owner_name        text NOT NULL DEFAULT '',
    ADD COLUMN assigned_by_name  text NOT NULL DEFAULT '',
    ADD COLUMN progress          integer NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    ADD COLUMN briefing_ids      uuid[] NOT NULL DEFAULT '{}' CHECK (array_position(briefing_ids, NULL) IS NULL),
    ADD COLUMN signal_ids        uuid[] NOT NULL DEFAULT '{}' CHECK (array_position(signal_ids, NULL) IS NULL),
    ADD COLUMN cancel_reason     text,
    ADD COLUMN completed_at      timestamptz;
