-- The storage floor of POST /Appointment (a pgbench script; bench.mjs runs it like pgbench -N, with the same clients,
-- on a migrated database of its own and with session_replication_role=replica, so no trigger fires).
-- One statement writes exactly the rows a booked one-practitioner Appointment leaves behind: the resource row with the
-- search columns the server would extract (tokens, date, sort keys, access tokens), its history row and its
-- sched_busy row. Every index and the exclusion constraint are maintained; no check, no trigger, no derivation runs.
-- So no implementation that keeps these indexes can write an Appointment faster than this on the same machine.
-- (Prepared mode turns any colon-word into a parameter, hence no clock times spelled out below.)
\set n random(1, 1000000000)
\set p random(0, 19)
WITH x AS (SELECT gen_random_uuid()::text AS id, 'Practitioner/bench-dr-' || v.p AS pr, 'bench-dr-' || v.p AS pid,
                  timestamptz '2040-01-01Z' + v.n * interval '30 min' AS s, clock_timestamp() AS ts
             FROM (SELECT CAST(:n AS int) AS n, CAST(:p AS int) AS p) v),
     y AS (SELECT x.*, '{"resourceType":"Appointment","id":"' || x.id || '","meta":{"versionId":"1","lastUpdated":"' || x.ts
                  || '"},"status":"booked","start":"' || x.s || '","end":"' || (x.s + interval '30 min')
                  || '","participant":[{"actor":{"reference":"' || x.pr || '"},"status":"accepted"}]}' AS body
             FROM x),
     r AS (INSERT INTO resource (res_type, id, version_id, last_updated, deleted, body, sp_version, sp_tokens, sp_text, sp_date, sp_sort)
           SELECT 'Appointment', y.id, 1, y.ts, false, y.body, 2,
                  ARRAY['actor', 'actor=' || y.pr, 'actor=' || y.pid, 'date', 'part-status', 'part-status=accepted',
                        'part-status=http://hl7.org/fhir/participationstatus|',
                        'part-status=http://hl7.org/fhir/participationstatus|accepted', 'practitioner',
                        'practitioner=' || y.pr, 'practitioner=' || y.pid, 'status', 'status=booked',
                        'status=http://hl7.org/fhir/appointmentstatus|', 'status=http://hl7.org/fhir/appointmentstatus|booked',
                        '_owner=' || y.pr, '_site=Location/bench-clinic'],
                  '', tstzrange(y.s, y.s + interval '1 s'),
                  jsonb_build_object('actor', y.pr, 'status', 'booked', 'part-status', 'accepted', 'practitioner', y.pr)
             FROM y),
     h AS (INSERT INTO resource_history (res_type, id, version_id, last_updated, deleted, method, status, body)
           SELECT 'Appointment', y.id, 1, y.ts, false, 'POST', 201, y.body FROM y),
     b AS (INSERT INTO sched_busy (actor, during, appointment_id)
           SELECT y.pr, tstzrange(y.s, y.s + interval '30 min'), y.id FROM y)
SELECT 1;
