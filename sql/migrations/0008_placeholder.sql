-- Placeholder for migration 0008, which another branch of issue 16 adds. Drop this file
-- when merging: the real 0008 takes its place.
SELECT 1;
