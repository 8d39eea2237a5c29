-- syncd's footprint in a MySQL 8.0+ or MariaDB 10.6+ business database: the whole
-- current schema, for readers and DBAs.
--
-- sql/mysql/migrations/ holds the same as forward-only steps (`syncd migrate --database
-- NAME` applies them and records them in syncd_schema_migrations), and
-- tests/migration/test_mysql_migrations.py proves that both produce the same catalog.
-- Change both in the same commit. Every table is InnoDB (transactions, row locks) in
-- utf8mb4 with the binary collation, so that text compares exactly, as in PostgreSQL
-- (case and accents count). Every time is UTC, in DATETIME(6), whatever a session's
-- time_zone: defaults and syncd's writes use UTC_TIMESTAMP(6).

-- Applied migration versions (maintained by `syncd migrate --database NAME`).
CREATE TABLE IF NOT EXISTS syncd_schema_migrations (
    version     INT NOT NULL,
    name        VARCHAR(100) NOT NULL,
    checksum    CHAR(64) NOT NULL,
    applied_at  DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)) COMMENT 'UTC',
    PRIMARY KEY (version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The public contract, as syncd.outbox in PostgreSQL: applications and capture triggers
-- write here, syncd reads. Unconsumed rows are read in id order through
-- syncd_outbox_unconsumed (consumed_at IS NULL, then id); retention deletes consumed
-- rows through the same index.
CREATE TABLE IF NOT EXISTS syncd_outbox (
    id            BIGINT NOT NULL AUTO_INCREMENT COMMENT 'order of arrival',
    created_at    DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)) COMMENT 'UTC',
    kind          VARCHAR(100) NOT NULL COMMENT 'which approval kind ([kinds.<name>])',
    business_key  VARCHAR(255) NOT NULL COMMENT 'key of the business record',
    action        VARCHAR(32) NOT NULL DEFAULT 'submit' COMMENT 'submit or cancel',
    payload       JSON NOT NULL DEFAULT (JSON_OBJECT()) COMMENT 'the business data',
    originator    VARCHAR(255) NULL COMMENT 'DingTalk userId of the initiator',
    request_id    VARCHAR(255) NULL COMMENT 'optional idempotency key',
    consumed_at   DATETIME(6) NULL COMMENT 'UTC; set by syncd',
    PRIMARY KEY (id),
    UNIQUE KEY syncd_outbox_request_id (request_id),
    KEY syncd_outbox_unconsumed (consumed_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
  COMMENT='Approval requests written by applications and capture triggers; consumed by syncd';

-- The write-back ledger: one row per final outcome written, committed in the same
-- transaction as the business row. A write-back whose row is here writes nothing again
-- (unless forced), so a crash between this commit and syncd's own is harmless.
CREATE TABLE IF NOT EXISTS syncd_writeback (
    approval_id   BIGINT NOT NULL COMMENT 'syncd.approval.id in syncd''s PostgreSQL',
    round         INT NOT NULL,
    kind          VARCHAR(100) NOT NULL,
    business_key  VARCHAR(255) NOT NULL,
    status        VARCHAR(32) NOT NULL COMMENT 'approved, rejected or canceled',
    seq           BIGINT NOT NULL COMMENT 'the round''s version when written',
    target        VARCHAR(200) NOT NULL COMMENT 'the table or procedure written',
    written       BOOLEAN NOT NULL COMMENT 'false: a newer round of the key was there first',
    writes        INT NOT NULL DEFAULT 1 COMMENT 'forced replays (syncd replay --force) add one',
    written_at    DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)) COMMENT 'UTC',
    PRIMARY KEY (approval_id, round),
    KEY syncd_writeback_business_key (kind, business_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
  COMMENT='Final outcomes syncd wrote, committed with the business row: a retry finds them';

-- Per business key, the newest version written (final or progress), locked by every
-- write-back of the key: a write older than it writes nothing.
CREATE TABLE IF NOT EXISTS syncd_writeback_key (
    kind          VARCHAR(100) NOT NULL,
    business_key  VARCHAR(255) NOT NULL,
    round         INT NOT NULL COMMENT 'the round last written (0: none yet)',
    seq           BIGINT NOT NULL COMMENT 'its version last written',
    final         BOOLEAN NOT NULL COMMENT 'the round''s final outcome was written',
    approval_id   BIGINT NOT NULL,
    status        VARCHAR(32) NOT NULL,
    written_at    DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)) COMMENT 'UTC',
    PRIMARY KEY (kind, business_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
  COMMENT='Per business key, the newest (round, seq) written: never an older one over it';
