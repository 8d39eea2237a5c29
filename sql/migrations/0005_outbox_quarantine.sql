-- 0005_outbox_quarantine: outbox rows the database refused to store, set aside.

-- Outbox rows ingest could not store as an approval even on their own (the database
-- refused the row's data): consumed so the rows behind them go on, kept in syncd.outbox
-- (retention leaves them) until `syncd retry --quarantined` or a DBA removes them.
CREATE TABLE syncd.outbox_quarantine (
    outbox_id       bigint PRIMARY KEY REFERENCES syncd.outbox (id) ON DELETE CASCADE,
    kind            text NOT NULL,
    business_key    text NOT NULL,
    error_code      text NOT NULL,
    error_message   text NOT NULL,
    quarantined_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE syncd.outbox_quarantine IS
    'Outbox rows the database refused to store as approvals (SQLSTATE and error); the row stays in syncd.outbox.';

CREATE VIEW syncd.quarantined AS
SELECT q.outbox_id, q.kind, q.business_key, o.action, q.error_code, q.error_message,
       pg_column_size(o.payload) AS payload_stored_bytes, o.created_at, q.quarantined_at
  FROM syncd.outbox_quarantine q
  JOIN syncd.outbox o ON o.id = q.outbox_id;
