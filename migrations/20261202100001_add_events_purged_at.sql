-- When the row's body was cleared, by the retention purge (RETENTION_DAYS) or by
-- `consumer erase`; NULL while it is kept. The status stays what processing made of the event
-- (`erased` after an erasure).
ALTER TABLE events ADD COLUMN purged_at DATETIME(6) NULL
