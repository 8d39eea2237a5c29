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
    status          text NOT NULL DEFAULT 'draft',
    approval_status text,
    instance_id     text,
    decided_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- insert_leave_request --
-- An employee submits a leave request.
INSERT INTO app.leave_request (applicant, leave_type, start_date, end_date, days, reason, status)
VALUES (%(applicant)s, %(leave_type)s, %(start_date)s, %(end_date)s, %(days)s, %(reason)s,
        'submitted')
RETURNING id;

-- insert_expense_claim --
-- An employee submits an expense claim.
INSERT INTO app.expense_claim (applicant, amount, category, spent_on, note, items, status)
VALUES (%(applicant)s, %(amount)s, %(category)s, %(spent_on)s, %(note)s, %(items)s, 'submitted')
RETURNING id;
