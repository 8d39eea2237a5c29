-- The demo application, as its DBA would set it up: its own login role (a member of
-- syncd_application, so it may insert outbox rows), its business table, and what it
-- lets syncd do there. Run once by the postgres image, when the data volume is new,
-- after roles.sql. Without a password the role logs in only inside the container
-- (`docker compose exec postgres psql -U app app`).
CREATE ROLE app LOGIN IN ROLE syncd_application;
CREATE SCHEMA app AUTHORIZATION app;
SET ROLE app;

-- The demo business table the compose stack writes approval outcomes into.
CREATE TABLE app.leave_request (
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

-- The write-back (compose/syncd.toml): find the row by its key, set the outcome columns.
GRANT USAGE ON SCHEMA app TO syncd_daemon;
GRANT SELECT (id), UPDATE (approval_status, instance_id, decided_at)
    ON app.leave_request TO syncd_daemon;
RESET ROLE;
