-- 0023_inbox_due: the inbox claim scans only the events that are due.
-- Events leased (a replica applying them) or deferred sat in inbox_unprocessed_idx between
-- the due ones, and the claim's filter read each of them on every pass. The new index
-- orders by when an event is due (new events, with no next_attempt_at, first), so the
-- claim's scan stops at the first event that is not. The index holds only unprocessed
-- events, but building it reads the whole table, and new events wait while it does.

DROP INDEX syncd.inbox_unprocessed_idx;
CREATE INDEX inbox_due_idx
    ON syncd.inbox ((coalesce(next_attempt_at, '-infinity'::timestamptz)), id)
    WHERE processed_at IS NULL;
