-- Dashboard, second part: response headers in the attempt log, and an index for the delivery log's
-- HTTP status filter.

-- A bounded, redacted copy of the response headers (at most 32 headers / 4 KiB, values cut at 256
-- bytes, credential-like values replaced): a JSON array of [name, value] pairs; NULL without a
-- response and for attempts logged before this migration.
ALTER TABLE attempts ADD COLUMN response_headers TEXT;

-- The delivery log filtered by a failure status (`last_status = 503`), newest first. Partial: a
-- delivery that succeeds at its first attempt (most of them) never enters it, so the outcome path
-- pays nothing for it. The log adds the same `last_status >= 300` term to its query so that the
-- planner may use it; a 2xx filter walks `deliveries_by_time`, where such rows are dense.
CREATE INDEX deliveries_by_failure_status ON deliveries (last_status, created_at, id)
    WHERE last_status >= 300;
