-- The demo's legacy application on MariaDB (`syncd demo --business-db mariadb`): the
-- same tables and inserts as app.sql, in MySQL's dialect.

-- create_leave_request --
-- The application's leave requests; syncd writes outcomes back into them.
CREATE TABLE leave_request (
    id              BIGINT AUTO_INCREMENT PRIMARY KEY,
    applicant       VARCHAR(64) NOT NULL,
    leave_type      VARCHAR(20) NOT NULL,
    start_date      DATE NOT NULL,
    end_date        DATE NOT NULL,
    days            INT NOT NULL,
    reason          TEXT,
    status          VARCHAR(20) NOT NULL DEFAULT 'draft',
    approval_status VARCHAR(20),
    instance_id     VARCHAR(64),
    decided_at      DATETIME(6),
    created_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) DEFAULT CHARSET = utf8mb4;

-- create_expense_claim --
-- The application's expense claims; syncd writes outcomes back into them.
CREATE TABLE expense_claim (
    id              BIGINT AUTO_INCREMENT PRIMARY KEY,
    applicant       VARCHAR(64) NOT NULL,
    amount          DECIMAL(12, 2) NOT NULL,
    category        VARCHAR(20) NOT NULL,
    spent_on        DATE NOT NULL,
    note            TEXT,
    items           JSON NOT NULL,
    status          VARCHAR(20) NOT NULL DEFAULT 'draft',
    approval_status VARCHAR(20),
    instance_id     VARCHAR(64),
    decided_at      DATETIME(6),
    created_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) DEFAULT CHARSET = utf8mb4;

-- insert_leave_request --
-- An employee submits a leave request.
INSERT INTO leave_request (applicant, leave_type, start_date, end_date, days, reason, status)
VALUES (%(applicant)s, %(leave_type)s, %(start_date)s, %(end_date)s, %(days)s, %(reason)s,
        'submitted');

-- insert_expense_claim --
-- An employee submits an expense claim.
INSERT INTO expense_claim (applicant, amount, category, spent_on, note, items, status)
VALUES (%(applicant)s, %(amount)s, %(category)s, %(spent_on)s, %(note)s, %(items)s,
        'submitted');

-- count_unrelayed --
-- Outbox rows syncd has not relayed into its PostgreSQL yet.
SELECT COUNT(*) AS n FROM syncd_outbox WHERE consumed_at IS NULL;
