-- 0014_outbox_relay: outbox rows relayed from business databases (MySQL, MariaDB).
-- A relayed row names the database and its id in that database's syncd_outbox; the
-- unique index makes the relay exactly once (a row read again after a crash inserts
-- nothing). syncd's own rows leave both NULL. syncd.outbox_source keeps, per business
-- database, the last id relayed, how many and when, for status and metrics.

ALTER TABLE syncd.outbox ADD COLUMN source_database text NULL;
ALTER TABLE syncd.outbox ADD COLUMN source_id bigint NULL;
ALTER TABLE syncd.outbox ADD CONSTRAINT outbox_source_check
    CHECK ((source_database IS NULL) = (source_id IS NULL));
CREATE UNIQUE INDEX outbox_source_idx ON syncd.outbox (source_database, source_id);
COMMENT ON COLUMN syncd.outbox.source_database IS
    'The business database ([databases.<name>]) whose syncd_outbox held the row; NULL: written here.';
COMMENT ON COLUMN syncd.outbox.source_id IS
    'The row''s id in that database''s syncd_outbox; NULL: written here.';

CREATE TABLE syncd.outbox_source (
    database     text PRIMARY KEY,
    last_id      bigint NOT NULL DEFAULT 0,
    relayed      bigint NOT NULL DEFAULT 0,
    relayed_at   timestamptz NULL
);
COMMENT ON TABLE syncd.outbox_source IS
    'Per business database: the highest syncd_outbox id relayed, rows relayed in all, and when the last of them came.';
