-- Plans on the booking path (issue 8, docs/performance.md, "$book: the patient's own Appointments, and updates planned
-- at every call").

-- sched_load() as in 0011_find_load_plans.sql, but the patient branch tests the Appointment's status by its sort key
-- (sp_sort ->> 'status', the one status code an Appointment has) instead of by its tokens. The token test was an
-- index condition of the same GIN index as the patient's token, so every $book with a patient read the index entries
-- of every booked Appointment in the database: with 7,000 booked Appointments, 0.5 ms in the index for the patient's
-- 14 rows (EXPLAIN ANALYZE), growing with the bookings. No index serves the sort key, so the patient's token alone
-- finds the rows (3 index pages) and the status filters them. Same rows: sp_sort holds the status exactly as the
-- status tokens do (src/fhir/search_index.c).
CREATE OR REPLACE FUNCTION sched_load(p_actors text[], p_schedules text[], p_from timestamptz, p_to timestamptz, p_patients text[])
RETURNS TABLE (kind text, key text, lo text, hi text, extra text)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan SET max_parallel_workers_per_gather = 0 AS $$
BEGIN
    RETURN QUERY
    SELECT 'busy', b.actor, extract(epoch FROM lower(b.during))::bigint::text, extract(epoch FROM upper(b.during))::bigint::text,
           b.appointment_id
      FROM unnest(p_actors) a
      JOIN LATERAL (SELECT * FROM sched_busy WHERE actor = a AND during && tstzrange(p_from, p_to) OFFSET 0) b ON true
     WHERE NOT EXISTS (SELECT 1 FROM sched_hold h WHERE h.appointment_id = b.appointment_id AND h.expires_at <= now())
    UNION ALL
    SELECT 'slot', r.id, date_part('epoch', lower(r.sp_date))::bigint::text,
           coalesce(r.sp_sort ->> '_end', r.body::json ->> 'end'), (r.sp_sort ->> 'status') || ' ' || (r.sp_sort ->> 'schedule')
      FROM unnest(p_schedules) s
      JOIN LATERAL (SELECT * FROM resource r WHERE r.res_type = 'Slot' AND NOT r.deleted
                       AND r.sp_sort ->> 'schedule' = substr(s, length('schedule=') + 1)
                       AND lower(r.sp_date) >= p_from - interval '7 days' AND lower(r.sp_date) < p_to OFFSET 0) r ON true
    UNION ALL
    SELECT 'slotted', s, NULL, NULL, NULL
      FROM unnest(p_schedules) s
      JOIN LATERAL (SELECT 1 FROM resource r WHERE r.res_type = 'Slot' AND NOT r.deleted
                       AND r.sp_sort ->> 'schedule' = substr(s, length('schedule=') + 1)
                       AND NOT r.sp_tokens && '{status=busy-unavailable,status=entered-in-error}'::text[]
                     ORDER BY r.sp_sort ->> 'schedule', lower(r.sp_date) LIMIT 1) usable ON true
    UNION ALL
    SELECT 'patient', p, NULL, NULL, r.body
      FROM unnest(p_patients) p
      JOIN LATERAL (SELECT * FROM resource r WHERE r.res_type = 'Appointment' AND NOT r.deleted
                       AND r.sp_tokens @> ARRAY['patient=' || p]
                       AND r.sp_sort ->> 'status' IN ('pending', 'booked', 'arrived', 'checked-in')
                       AND lower(r.sp_date) < p_to AND upper(r.sp_date) > p_from - interval '7 days' OFFSET 0) r ON true;
END
$$;

-- fhir_write() keeps generic plans. Its UPDATE names the partitioned `resource` table with the type as a variable: a
-- plan for the values at hand prunes to one partition and looks cheaper than the generic one, so PostgreSQL planned
-- it again at every call (pg_stat_statements: 163 us of planning per $book at one client). The generic plan prunes at
-- executor start-up instead. The setting also holds for the statements of the triggers the write fires. Measured in
-- a loop of 300 Appointment updates on the bench dataset, four rounds alternated: 494-672 us a write before, 386-401
-- after; creates 291-309 us before, 279-296 after (no difference).
ALTER FUNCTION fhir_write(text, text, text, text, integer, text, jsonb) SET plan_cache_mode = force_generic_plan;
