-- The demo's legacy application: its own tables, and the inserts it makes.
-- syncd never runs these outside `syncd demo`; they show what an application owns.

-- create_demo_tables --
-- The application's business tables; syncd writes outcomes back into them.
CREATE SCHEMA app;
CREATE TABLE app.leave_request (
    id              serial PRIMARY KEY,
    applicant       text NOT NULL,
    leave_type      text NOT NULL,
    start_date      date NOT NULL,
    end_date        date NOT NULL,
    days            numeric NOT NULL,
    reason          text,
    status          text NOT NULL DEFAULT 'draft',
    approval_status text,
    instance_id     text,
    decided_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE app.expense_claim (
    id              serial PRIMARY KEY,
    applicant       text NOT NULL,
    amount          numeric(12, 2) NOT NULL,
    category        text NOT NULL,
    spent_on        date NOT NULL,
    note            text,
    items           jsonb NOT NULL DEFAULT '[]',
    receipt         bytea,          -- a scan of the receipt, sent as the form's 附件
    receipt_name    text,
    status          text NOT NULL DEFAULT 'draft',
    approval_status text,
    instance_id     text,
    decided_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- Leave requests people started in DingTalk itself: syncd inserts one row per instance
-- (the inbound kind leave_dingtalk) and writes its outcome back into it.
CREATE TABLE app.leave_from_dingtalk (
    id              serial PRIMARY KEY,
    instance_id     text NOT NULL UNIQUE,
    serial          text,
    applicant       text,
    leave_type      text,
    period          jsonb,          -- the date range: ["start", "end"]
    days            numeric,
    reason          text,
    started_at      timestamptz,
    approval_status text,
    decided_at      timestamptz,
    imported_at     timestamptz NOT NULL DEFAULT now()
);

-- insert_leave_request --
-- An employee submits a leave request.
INSERT INTO app.leave_request (applicant, leave_type, start_date, end_date, days, reason, status)
VALUES (%(applicant)s, %(leave_type)s, %(start_date)s, %(end_date)s, %(days)s, %(reason)s,
        'submitted')
RETURNING id;

-- insert_expense_claim --
-- An employee submits an expense claim.
INSERT INTO app.expense_claim (applicant, amount, category, spent_on, note, items, receipt,
                               receipt_name, status)
VALUES (%(applicant)s, %(amount)s, %(category)s, %(spent_on)s, %(note)s, %(items)s, %(receipt)s,
        %(receipt_name)s, 'submitted')
RETURNING id;

-- select_leave_from_dingtalk --
-- The latest leave requests imported from DingTalk, for the live view.
SELECT id, instance_id, applicant, leave_type, days, approval_status
  FROM app.leave_from_dingtalk
 ORDER BY id DESC
 LIMIT %(limit)s;
