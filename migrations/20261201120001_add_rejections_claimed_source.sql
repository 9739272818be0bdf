-- A rejection of a source that is not configured is stored under the one bucket `(unknown)`;
-- the name the request claimed is kept here, escaped and bounded, for reading only: nothing
-- groups by it, so strangers cannot add rows to any view by making up names.
ALTER TABLE rejections
    ADD COLUMN claimed_source VARCHAR(64) NULL AFTER source
