-- How the body is encoded: `application/json` for JSON sources, or
-- `application/x-www-form-urlencoded` for sources with body_format = "form" (Slack's slash
-- commands, for one). JSON functions apply to the JSON rows only.
ALTER TABLE events
    ADD COLUMN content_type VARCHAR(64) NOT NULL DEFAULT 'application/json' AFTER body_sha256
