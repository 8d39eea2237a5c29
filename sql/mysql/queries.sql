-- syncd's named statements for a MySQL or MariaDB business database, run through
-- SQLAlchemy's text() (:name parameters). The same "-- name --" headers as queries.sql.

-- get_migrate_lock --
-- Serialises `syncd migrate` runs on one database (lock names are server-wide).
SELECT GET_LOCK(LEFT(CONCAT('syncd_migrate:', DATABASE()), 64), :timeout) AS locked;

-- release_migrate_lock --
SELECT RELEASE_LOCK(LEFT(CONCAT('syncd_migrate:', DATABASE()), 64)) AS released;

-- version_table_exists --
SELECT count(*) AS present FROM information_schema.tables
 WHERE table_schema = DATABASE() AND table_name = 'syncd_schema_migrations';

-- create_version_table --
CREATE TABLE IF NOT EXISTS syncd_schema_migrations (
    version     INT NOT NULL,
    name        VARCHAR(100) NOT NULL,
    checksum    CHAR(64) NOT NULL,
    applied_at  DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)) COMMENT 'UTC',
    PRIMARY KEY (version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- select_versions --
SELECT version, checksum FROM syncd_schema_migrations ORDER BY version;

-- insert_version --
INSERT INTO syncd_schema_migrations (version, name, checksum)
VALUES (:version, :name, :checksum);

-- lock_business_key --
-- The key's version row, made if missing, locked until the write-back commits: every
-- write-back of one key (final or progress, any replica) takes its turn here.
INSERT INTO syncd_writeback_key (kind, business_key, round, seq, final, approval_id, status)
VALUES (:kind, :business_key, 0, 0, FALSE, 0, '')
    ON DUPLICATE KEY UPDATE round = round;

-- select_business_key --
SELECT round, seq, final FROM syncd_writeback_key
 WHERE kind = :kind AND business_key = :business_key FOR UPDATE;

-- select_ledger --
SELECT round, kind, business_key FROM syncd_writeback WHERE approval_id = :approval_id
   FOR UPDATE;

-- record_written --
INSERT INTO syncd_writeback (approval_id, round, kind, business_key, status, seq, target,
                             written, written_at)
VALUES (:approval_id, :round, :kind, :business_key, :status, :seq, :target, :written,
        UTC_TIMESTAMP(6))
    ON DUPLICATE KEY UPDATE writes = writes + 1, written_at = UTC_TIMESTAMP(6);

-- record_key_version --
UPDATE syncd_writeback_key
   SET round = :round, seq = :seq, final = :final, approval_id = :approval_id,
       status = :status, written_at = UTC_TIMESTAMP(6)
 WHERE kind = :kind AND business_key = :business_key;

-- select_procedure --
SELECT count(*) AS present FROM information_schema.routines
 WHERE routine_schema = COALESCE(:schema, DATABASE()) AND routine_name = :name
   AND routine_type = 'PROCEDURE';

-- select_visible_columns --
-- A business table's columns that syncd's user may use (column privileges suffice,
-- where SHOW CREATE TABLE would need the whole table).
SELECT column_name AS name, data_type AS type FROM information_schema.columns
 WHERE table_schema = COALESCE(:schema, DATABASE()) AND table_name = :name
 ORDER BY ordinal_position;

-- capture_table --
-- The table `syncd capture --database` is asked for (NULL schema: the DSN's database).
SELECT table_schema AS table_schema, table_name AS table_name, table_type AS table_type,
       DATABASE() AS outbox_schema
  FROM information_schema.tables
 WHERE table_schema = COALESCE(:schema, DATABASE()) AND table_name = :name;

-- capture_columns --
SELECT column_name AS name, LOWER(data_type) AS data_type FROM information_schema.columns
 WHERE table_schema = :schema AND table_name = :name
 ORDER BY ordinal_position;

-- capture_triggers --
-- syncd's capture triggers (by name) the current user can see, in every database.
SELECT trigger_schema AS trigger_schema, trigger_name AS trigger_name,
       event_object_table AS table_name, LOWER(event_manipulation) AS event,
       action_statement AS body, definer AS definer
  FROM information_schema.triggers
 WHERE trigger_name LIKE 'syncd\_capture\_%'
 ORDER BY trigger_schema, event_object_table, trigger_name;

-- select_unconsumed_outbox --
-- The relay: rows not consumed yet, in id order (through syncd_outbox_unconsumed). Read
-- from the start every time, so a row whose transaction committed after a higher id was
-- read is not skipped; relayed rows are marked consumed, so the range stays short.
SELECT id, created_at, kind, business_key, action, CAST(payload AS CHAR) AS payload,
       originator, request_id
  FROM syncd_outbox
 WHERE consumed_at IS NULL
 ORDER BY id
 LIMIT :limit;

-- mark_outbox_consumed --
UPDATE syncd_outbox SET consumed_at = UTC_TIMESTAMP(6)
 WHERE id IN :ids AND consumed_at IS NULL;

-- purge_consumed_outbox --
-- Retention: consumed rows older than the retention period, oldest first.
DELETE FROM syncd_outbox WHERE consumed_at < :before ORDER BY consumed_at LIMIT :limit;

-- select_outbox_backlog --
SELECT count(*) AS waiting, MIN(created_at) AS oldest_at
  FROM syncd_outbox WHERE consumed_at IS NULL;

-- current_account --
-- The account syncd's session runs as ('user@host'), the one `syncd check` names in the
-- GRANT statements it proposes.
SELECT CURRENT_USER() AS account;

-- current_database --
SELECT DATABASE() AS name;

-- select_old_ledger --
-- Ledger retention: approvals whose ledger rows are older than the retention, in id
-- order from :after (the primary key: old rows have the low ids).
SELECT approval_id FROM syncd_writeback
 WHERE approval_id > :after AND written_at < :before
 ORDER BY approval_id
 LIMIT :limit;

-- delete_old_ledger --
DELETE FROM syncd_writeback WHERE approval_id IN :ids AND written_at < :before;
