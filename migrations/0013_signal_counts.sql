-- 0013_signal_counts: signals counted per hour (UTC) of `published_at` and per severity, category
-- and status, kept in step with `signals` by statement triggers in the writing transaction. The
-- dashboard's 24-hour counts sum at most 24 × 128 of these rows, plus the signals of the one
-- partial hour at the window's start, instead of scanning every signal of the window: 138k
-- signals in the window took 76 ms (three processes with a parallel index-only scan) every time
-- the aggregate was recomputed, every 2 s, and that stalled every other request on a two-core
-- machine (the cached dashboard's p99 twice that of a route without the aggregate).
--
-- Writers of `signals` (ingest, triage) take this table's rows of the hours they touch, sorted by
-- key, at the end of their INSERT/UPDATE statement and before their audit event takes the audit
-- chain's head: one order for every writer, so they queue rather than deadlock.

CREATE TABLE signal_counts (
    hour        timestamptz NOT NULL,
    severity    text NOT NULL,
    category    text NOT NULL,
    status      text NOT NULL,
    -- Never below zero once a statement is done; no CHECK, because an update's net change is
    -- proposed as a row to insert (a negative one for the group the rows left) before it
    -- meets the existing row, and a CHECK refuses that proposal.
    n           bigint NOT NULL,
    PRIMARY KEY (hour, severity, category, status)
);

-- The triggers run as the table's owner: the application role reads the counts, never writes them.
CREATE FUNCTION signal_counts_apply() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO signal_counts AS c (hour, severity, category, status, n)
        SELECT date_trunc('hour', published_at, 'UTC'), severity, category, status, count(*)
        FROM new_rows GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (hour, severity, category, status) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO signal_counts AS c (hour, severity, category, status, n)
        SELECT hour, severity, category, status, sum(d) FROM (
            SELECT date_trunc('hour', published_at, 'UTC') AS hour, severity, category, status, -1 AS d FROM old_rows
            UNION ALL
            SELECT date_trunc('hour', published_at, 'UTC'), severity, category, status, 1 FROM new_rows
        ) AS changes
        GROUP BY 1, 2, 3, 4 HAVING sum(d) <> 0 ORDER BY 1, 2, 3, 4
        ON CONFLICT (hour, severity, category, status) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE signal_counts AS c SET n = c.n - gone.n
        FROM (
            SELECT date_trunc('hour', published_at, 'UTC') AS hour, severity, category, status, count(*) AS n
            FROM old_rows GROUP BY 1, 2, 3, 4
        ) AS gone
        WHERE (c.hour, c.severity, c.category, c.status) = (gone.hour, gone.severity, gone.category, gone.status);
    ELSE  -- TRUNCATE
        TRUNCATE signal_counts;
    END IF;
    RETURN NULL;
END;
$fn$;

CREATE TRIGGER signal_counts_insert AFTER INSERT ON signals
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION signal_counts_apply();
CREATE TRIGGER signal_counts_update AFTER UPDATE ON signals
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION signal_counts_apply();
CREATE TRIGGER signal_counts_delete AFTER DELETE ON signals
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION signal_counts_apply();
CREATE TRIGGER signal_counts_truncate AFTER TRUNCATE ON signals
    FOR EACH STATEMENT EXECUTE FUNCTION signal_counts_apply();

-- The signals there already: writes wait for this (seconds per million rows), once, at deploy.
LOCK TABLE signals IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO signal_counts (hour, severity, category, status, n)
SELECT date_trunc('hour', published_at, 'UTC'), severity, category, status, count(*)
FROM signals GROUP BY 1, 2, 3, 4;

DO $grant$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'sitrep_app') THEN
        REVOKE ALL ON signal_counts FROM sitrep_app;
        GRANT SELECT ON signal_counts TO sitrep_app;
    END IF;
END;
$grant$;
