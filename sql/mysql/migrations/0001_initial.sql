-- syncd's footprint in a MySQL or MariaDB business database: the outbox and the
-- write-back ledger. Each statement can run again (IF NOT EXISTS): MySQL cannot roll DDL
-- back, so a migration stopped half-way is finished by running `syncd migrate` again.

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
