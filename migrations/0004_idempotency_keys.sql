-- 0004_idempotency_keys: `Idempotency-Key` records for `x-idempotency` operations. A row is
-- written in the same transaction as the effect it guards, so a key exists exactly when its
-- effect does; the saved answer is replayed for a retry with the same request. Rows expire
-- (`expires_at`) and are removed lazily when their key is used again, or by a sweep.

CREATE TABLE idempotency_keys (
    principal_id    text NOT NULL CHECK (principal_id <> ''),
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    operation       text NOT NULL,
    fingerprint     text NOT NULL,
    status          integer NOT NULL CHECK (status BETWEEN 100 AND 599),
    headers         jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(headers) = 'array'),
    content_type    text,
    body            bytea NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (principal_id, key)
);

CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'sitrep_app') THEN
        GRANT SELECT, INSERT, DELETE ON idempotency_keys TO sitrep_app;
    END IF;
END;
$$;
