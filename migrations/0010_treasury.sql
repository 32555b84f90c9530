-- 0010_treasury: accepted treasury position files and their rows.
--
-- An upload is stored whole or not at all: its rows are inserted in the same transaction as
-- the upload row, which commits only when every row passed. Refused files leave nothing here
-- (the audit log records the refusal). Both tables are append-only: a later file for the same
-- value date is a new upload, never an edit.

CREATE TABLE treasury_uploads (
    id            uuid PRIMARY KEY,
    file_name     text NOT NULL CHECK (char_length(file_name) BETWEEN 1 AND 255),
    sha256        bytea NOT NULL CHECK (octet_length(sha256) = 32),
    size_bytes    bigint NOT NULL CHECK (size_bytes > 0),
    row_count     integer NOT NULL CHECK (row_count > 0),
    as_of_date    date NOT NULL,
    currencies    text[] NOT NULL,
    uploaded_by   text NOT NULL CHECK (uploaded_by <> ''),
    uploaded_by_id text NOT NULL,
    uploaded_at   timestamptz NOT NULL DEFAULT now()
);

-- The same bytes twice are refused (409 naming the first); the index also settles a race
-- between two concurrent uploads of one file.
CREATE UNIQUE INDEX treasury_uploads_sha256_key ON treasury_uploads (sha256);
-- Listing (newest first) and "the latest upload on or before a date".
CREATE INDEX treasury_uploads_listing_idx ON treasury_uploads (uploaded_at DESC, id DESC);
CREATE INDEX treasury_uploads_as_of_idx ON treasury_uploads (as_of_date DESC, uploaded_at DESC, id DESC);

CREATE TABLE treasury_positions (
    -- Deferred: the rows are copied in before the upload row, whose checksum and counts are
    -- known only at the end of the file; both commit together or not at all.
    upload_id     uuid NOT NULL REFERENCES treasury_uploads (id) DEFERRABLE INITIALLY DEFERRED,
    line          integer NOT NULL CHECK (line > 0),
    entity        text NOT NULL,
    bank          text NOT NULL,
    account_ref   text NOT NULL,
    currency      char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- Exact: fifteen integer digits and four fraction digits, the contract's decimal.
    balance       numeric(19, 4) NOT NULL,
    value_date    date NOT NULL,
    PRIMARY KEY (upload_id, line)
);

CREATE FUNCTION treasury_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'treasury uploads and positions are never changed or deleted' USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER treasury_uploads_append_only BEFORE UPDATE OR DELETE ON treasury_uploads
    FOR EACH ROW EXECUTE FUNCTION treasury_append_only();
CREATE TRIGGER treasury_positions_append_only BEFORE UPDATE OR DELETE ON treasury_positions
    FOR EACH ROW EXECUTE FUNCTION treasury_append_only();

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'sitrep_app') THEN
        GRANT SELECT, INSERT ON treasury_uploads, treasury_positions TO sitrep_app;
    END IF;
END;
$$;
