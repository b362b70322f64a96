-- fhir_write() keeps one plan per statement for the session, like sched_load (migration 0011), instead of planning
-- its row lookup and update again at every call (issue 8, docs/performance.md, "Writes without planning").
--
-- Its statements name the partitioned table with the type as a parameter. Custom plans prune the partitions while
-- planning, which is why PostgreSQL kept choosing them (a generic plan's estimate counts every partition): planning
-- was about a quarter of PostgreSQL's time in a transaction Bundle of Slot PUTs. A generic plan prunes at execution.
--
-- A generic plan is made once per session, possibly on an empty partition, where every index leading with res_type
-- costs the same. resource_last_updated led with res_type, so the row lookup (res_type = $1 AND id = $2) could be
-- planned on it and then read every row of the type at each write. res_type is constant within a partition: the index
-- on last_updated alone serves every _lastUpdated search and sort as before, and leaves the primary key the only index
-- a lookup by id can use, whatever the statistics.
DROP INDEX resource_last_updated;
CREATE INDEX resource_last_updated ON resource (last_updated);

ALTER FUNCTION fhir_write(text, text, text, text, integer, text, jsonb) SET plan_cache_mode = force_generic_plan;
