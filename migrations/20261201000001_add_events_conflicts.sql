-- Of `duplicates`, how many arrived with another body than the stored one (the same source and
-- delivery id, a different body_sha256). The stored body, the first committed, is kept.
ALTER TABLE events
    ADD COLUMN conflicts INT UNSIGNED NOT NULL DEFAULT 0 AFTER duplicates
