-- 0018_inbound: approvals started in DingTalk (inbound kinds) waiting to be imported, and
-- the cursor of `syncd backfill`. An import turns one instance into one business row and
-- one syncd.approval row in one transaction; the unique instance id of syncd.approval
-- makes a second import of the same instance (a duplicate event, a replica) a no-op.

CREATE TABLE syncd.inbound_import (
    instance_id      text PRIMARY KEY,
    kind             text NOT NULL,
    process_code     text NOT NULL,
    source           text NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_owner      text NULL,
    lease_expires_at timestamptz NULL,
    last_error       text NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT inbound_import_source_check CHECK (source IN ('event', 'listing', 'backfill'))
);
COMMENT ON TABLE syncd.inbound_import IS
    'Instances of inbound kinds learned from start events, the listing or a backfill, not imported yet (deleted when imported or parked).';
CREATE INDEX inbound_import_due_idx ON syncd.inbound_import (next_attempt_at);

CREATE TABLE syncd.inbound_backfill (
    kind             text PRIMARY KEY,
    process_code     text NOT NULL,
    since            timestamptz NOT NULL,
    until            timestamptz NOT NULL,
    window_start     timestamptz NOT NULL,
    next_token       bigint NOT NULL DEFAULT 0,
    listed           bigint NOT NULL DEFAULT 0,
    queued           bigint NOT NULL DEFAULT 0,
    lease_owner      text NULL,
    lease_expires_at timestamptz NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz NULL
);
COMMENT ON TABLE syncd.inbound_backfill IS
    'The cursor of `syncd backfill` per inbound kind: the window being listed and its next page; a lease keeps a second backfill off it.';
