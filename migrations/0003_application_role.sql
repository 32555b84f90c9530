-- 0003_application_role: `sitrep_app`, the role `sitrep serve` should run as (NOLOGIN: grant
-- it to the login the service uses, which must not own the tables). It may read and write the
-- working tables but can never rewrite history: no UPDATE, DELETE or TRUNCATE on the audit log
-- or on briefing revisions, whatever the triggers do. Migrations run as the owner.
--
-- Creating a role needs CREATEROLE; where the migrating user lacks it (some managed servers),
-- the role is left for the operator to create and this migration only says so.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sitrep_app') THEN
        BEGIN
            CREATE ROLE sitrep_app NOLOGIN;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'cannot create role sitrep_app (no CREATEROLE); create it and re-grant as in 0003_application_role.sql';
            RETURN;
        END;
    END IF;
    GRANT USAGE ON SCHEMA public TO sitrep_app;
    GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO sitrep_app;
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO sitrep_app;
    REVOKE UPDATE, DELETE, TRUNCATE ON audit_events, briefing_revisions, posture_history FROM sitrep_app;
    REVOKE DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public FROM sitrep_app;
    REVOKE ALL ON schema_migrations FROM sitrep_app;
    GRANT SELECT ON schema_migrations TO sitrep_app;
END;
$$;
