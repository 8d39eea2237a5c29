"""The application's business table that the benchmarks and the fault suite run against.

One definition for both: ``bench/harness.py`` (the repository's benchmarks, which import
from here) and ``tests/acceptance/faults/harness.py``. ``app.leave_request`` holds what the
leave kind's form reads (applicant, leave type, dates, days, reason; the form fields have
defaults, so a load need only insert applicant, days, reason and status), the
application's own ``status`` (the capture submits a row when it becomes 'submitted'),
and the columns syncd writes the outcome into. The benchmarks write back three of them;
the fault suite writes back every field a write-back can carry, in the columns that
:data:`EVERY_OUTCOME` adds.
"""

from __future__ import annotations

LEAVE_TABLE = """
CREATE SCHEMA app;
CREATE TABLE app.leave_request (
    id serial PRIMARY KEY,
    applicant text NOT NULL,
    leave_type text NOT NULL DEFAULT '年假',
    start_date date NOT NULL DEFAULT '2026-01-10',
    end_date date NOT NULL DEFAULT '2026-01-11',
    days numeric NOT NULL,
    reason text,
    status text NOT NULL DEFAULT 'draft',
    approval_status text,
    instance_id text,
    decided_at timestamptz
);
"""

#: After :data:`LEAVE_TABLE`: a column for each other field a write-back can carry.
EVERY_OUTCOME = """
ALTER TABLE app.leave_request
    ADD COLUMN dingtalk_status text,
    ADD COLUMN result text,
    ADD COLUMN approver text,
    ADD COLUMN remark text,
    ADD COLUMN business_id text;
"""
