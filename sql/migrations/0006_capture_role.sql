-- 0006_capture_role: capture triggers run as a role with nothing worth stealing.
--
-- `syncd capture add` used to create one SECURITY DEFINER trigger function per capture,
-- owned by whoever ran it (often a superuser). Its to_jsonb(NEW) calls the casts to json
-- of the business table's column types, and the table's owner can define those: their
-- code ran with the installer's rights. Now every capture trigger calls one function,
-- syncd.capture_row(), owned by the NOLOGIN role syncd_capture, which may only insert
-- into syncd.outbox. Conditions no longer run inside it: they are the triggers' WHEN
-- clauses, evaluated as the writer of the row. docs/security.md explains the choice.
-- Captures installed earlier are rebuilt on it by `syncd migrate` right after this step.

-- Roles are cluster-wide: another database's migration (or a DBA) may have created it,
-- possibly at the same moment. Creating it needs CREATEROLE; a DBA can create it first.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'syncd_capture') THEN
        BEGIN
            CREATE ROLE syncd_capture NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT
                NOREPLICATION NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created concurrently by the migration of another database
        END;
    END IF;
    -- A non-superuser owner hands the function over below: it must be able to SET ROLE.
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
       AND NOT pg_catalog.pg_has_role('syncd_capture', 'MEMBER') THEN
        GRANT syncd_capture TO CURRENT_USER;
    END IF;
END
$$;

-- Everything it may do: insert outbox rows (the identity and the NOTIFY trigger come
-- with the insert; neither needs a grant).
GRANT USAGE ON SCHEMA syncd TO syncd_capture;
GRANT INSERT ON syncd.outbox TO syncd_capture;

-- The one capture trigger function. Arguments: kind, key column, action. It runs no
-- condition and no name lookup: everything is schema-qualified, so even if its owner
-- made it SECURITY INVOKER with another search_path, a writer would run nothing else.
CREATE FUNCTION syncd.capture_row() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    row_json pg_catalog.jsonb := pg_catalog.to_jsonb(NEW);
BEGIN
    INSERT INTO syncd.outbox (kind, business_key, action, payload)
    VALUES (TG_ARGV[0],
            COALESCE(pg_catalog.jsonb_extract_path_text(row_json, TG_ARGV[1]), ''),
            TG_ARGV[2],
            row_json);
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION syncd.capture_row() IS
    'Capture trigger: writes the row into syncd.outbox as syncd_capture (args: kind, key column, action).';
-- Only roles granted EXECUTE (and superusers) may attach it to a table.
REVOKE ALL ON FUNCTION syncd.capture_row() FROM PUBLIC;
-- A non-superuser may give a function to a role only while that role can create in its
-- schema: granted and revoked within this transaction, so nobody ever sees it.
GRANT CREATE ON SCHEMA syncd TO syncd_capture;
ALTER FUNCTION syncd.capture_row() OWNER TO syncd_capture;
REVOKE CREATE ON SCHEMA syncd FROM syncd_capture;

-- The outbox's NOTIFY trigger runs in the inserting context: never look names up there.
ALTER FUNCTION syncd.notify_outbox() SET search_path = pg_catalog, pg_temp;
