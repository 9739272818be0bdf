-- A body may be gone while its row stays: cleared by the retention purge (RETENTION_DAYS) or
-- by `consumer erase`. The row, its unique key and its body_sha256 stay, so a late retry of
-- the event is still a duplicate. NULL rather than '' so JSON functions over the column skip
-- such rows instead of failing on them. On MySQL 8 this rebuilds the table in place (reads and
-- writes continue); on MariaDB 10.11 it is an instant change.
ALTER TABLE events MODIFY body LONGTEXT NULL
