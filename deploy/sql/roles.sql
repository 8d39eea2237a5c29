-- syncd's database roles, the first half of its least-privilege setup: run once per
-- database, as a superuser (or a role with CREATEROLE that owns the database and the
-- schema public), BEFORE the first `syncd migrate`. Idempotent; it sets no passwords.
-- The second half, the grants on syncd's tables, is deploy/sql/least_privilege.sql,
-- which `syncd migrate --grants` applies as syncd_owner after every migration.
-- docs/security.md explains the roles.
--
--     psql "$ADMIN_DSN" -v ON_ERROR_STOP=1 -f deploy/sql/roles.sql
--     psql "$ADMIN_DSN" -c "ALTER ROLE syncd_owner PASSWORD '...'"
--     psql "$ADMIN_DSN" -c "ALTER ROLE syncd_daemon PASSWORD '...'"
--     -- an application that inserts outbox rows itself joins the group role:
--     psql "$ADMIN_DSN" -c 'GRANT syncd_application TO app_user'
--     -- a reporting tool or a person who reads the statistics:
--     psql "$ADMIN_DSN" -c 'GRANT syncd_reader TO metabase'
--
-- syncd_owner        owns the schema syncd: `syncd migrate --grants`, `syncd capture add`
-- syncd_daemon       `syncd run` and the operator commands; owns nothing
-- syncd_application  a group role (no login): INSERT on syncd.outbox
-- syncd_reader       a group role (no login) for reporting: SELECT on the statistics
--                    views (syncd.stats_*) and nothing else, no payload, no history
-- syncd_capture      no login, nothing but INSERT on syncd.outbox: owns the function that
--                    capture triggers call (migration 0006); syncd_owner is its member so
--                    that migrate can hand the function over
--
-- Roles belong to the whole server, not to one database: running this in a second
-- database reuses them and adds only that database's grants.

DO $$
DECLARE
    spec text[];
BEGIN
    FOREACH spec SLICE 1 IN ARRAY ARRAY[
        ['syncd_owner', 'LOGIN'],
        ['syncd_daemon', 'LOGIN'],
        ['syncd_application', 'NOLOGIN'],
        ['syncd_reader', 'NOLOGIN'],
        ['syncd_capture', 'NOLOGIN NOINHERIT']
    ] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = spec[1]) THEN
            BEGIN
                EXECUTE format(
                    'CREATE ROLE %I %s NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
                    'NOBYPASSRLS', spec[1], spec[2]);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another session created it at the same moment
            END;
        END IF;
    END LOOP;
    IF NOT pg_has_role('syncd_owner', 'syncd_capture', 'MEMBER') THEN
        GRANT syncd_capture TO syncd_owner;
    END IF;
    -- The owner creates the schema syncd at its first migrate.
    EXECUTE format('GRANT CONNECT, CREATE ON DATABASE %I TO syncd_owner', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO syncd_daemon', current_database());
END
$$;

-- Up to PostgreSQL 14 every role may create objects in the schema public (from 15 on
-- only the database owner may, and this changes nothing). Such an object could shadow a
-- function or operator for a role whose search_path includes public, so nobody gets
-- that by default. Applications that need it: GRANT CREATE ON SCHEMA public TO their role.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
