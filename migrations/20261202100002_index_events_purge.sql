-- The purge finds the bodies still kept that are past RETENTION_DAYS through this index, so a
-- pass reads only what it clears, however many rows were purged before.
CREATE INDEX events_purge ON events (purged_at, received_at)
