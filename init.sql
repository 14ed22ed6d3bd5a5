-- qcnn results schema for PostgreSQL (15+) and Greenplum (6+), which run this file unchanged.
-- The embedded SQLite schema is derived from this file by qcnn (host/src/db/schema.rs),
-- so this is the one place where the schema is written.
--
-- Greenplum notes: every table is distributed by its first column (the default), which each
-- primary key starts with, so the keys are valid there; Greenplum accepts the REFERENCES
-- clauses but does not enforce them. Apply with `psql -f init.sql` or `qcnn db init`.
-- All integers are BIGINT so that both engines read them back as 64-bit numbers.
-- `qcnn db init` applies this under an advisory lock, after checking that tables which already
-- exist have the columns below; `psql -f` does neither.

-- Checkpoints and blobs to evaluate; `qcnn evaluate` with no --model takes the newest row.
CREATE TABLE IF NOT EXISTS model_weights (
    id BIGSERIAL PRIMARY KEY,
    path TEXT NOT NULL,
    sha256 TEXT,
    added_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per `qcnn evaluate` run. The float_* columns and agreement are NULL when the
-- model was an int8 blob, which has no float reference.
CREATE TABLE IF NOT EXISTS model_results (
    id BIGSERIAL PRIMARY KEY,
    model_id BIGINT REFERENCES model_weights (id),
    model_path TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    samples BIGINT NOT NULL,
    threads BIGINT NOT NULL,
    images_per_s DOUBLE PRECISION NOT NULL,
    loss DOUBLE PRECISION NOT NULL,
    accuracy DOUBLE PRECISION NOT NULL,
    f1_macro DOUBLE PRECISION NOT NULL,
    float_loss DOUBLE PRECISION,
    float_accuracy DOUBLE PRECISION,
    float_f1_macro DOUBLE PRECISION,
    agreement DOUBLE PRECISION
);

-- Per-class figures of a result, for the int8 model and (when present) the float reference.
CREATE TABLE IF NOT EXISTS model_result_classes (
    result_id BIGINT NOT NULL REFERENCES model_results (id),
    variant TEXT NOT NULL CHECK (variant IN ('int8', 'float')),
    class BIGINT NOT NULL,
    precision DOUBLE PRECISION NOT NULL,
    recall DOUBLE PRECISION NOT NULL,
    f1 DOUBLE PRECISION NOT NULL,
    support BIGINT NOT NULL,
    PRIMARY KEY (result_id, variant, class)
);

-- The confusion matrix of a result, one row per (true class, predicted class) cell.
CREATE TABLE IF NOT EXISTS model_result_confusion (
    result_id BIGINT NOT NULL REFERENCES model_results (id),
    variant TEXT NOT NULL CHECK (variant IN ('int8', 'float')),
    actual BIGINT NOT NULL,
    predicted BIGINT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (result_id, variant, actual, predicted)
);

-- The schema's version: qcnn refuses to work on a database of another version before doing
-- any work, and `qcnn db init` migrates an older one (host/src/db/schema.rs).
CREATE TABLE IF NOT EXISTS schema_version (
    version BIGINT NOT NULL
);
INSERT INTO schema_version (version) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM schema_version);
