-- The demo business table the compose stack writes approval outcomes into.
CREATE SCHEMA IF NOT EXISTS app;
CREATE TABLE IF NOT EXISTS app.leave_request (
    id              serial PRIMARY KEY,
    applicant       text NOT NULL,
    leave_type      text NOT NULL DEFAULT '年假',
    start_date      date NOT NULL DEFAULT current_date,
    end_date        date NOT NULL DEFAULT current_date + 1,
    days            numeric NOT NULL,
    reason          text,
    status          text NOT NULL DEFAULT 'draft',
    approval_status text,
    instance_id     text,
    decided_at      timestamptz
);
