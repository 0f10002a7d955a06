-- Attempts made in earlier runs of a delivery: a redrive or a manual retry starts a new retry
-- schedule (`attempts` back to 0) while the attempt log's numbering continues from here.
ALTER TABLE deliveries ADD COLUMN attempts_before BIGINT NOT NULL DEFAULT 0;
