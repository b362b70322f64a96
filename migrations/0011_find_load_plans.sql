-- sched_load's plan, made once per session for any values (force_generic_plan), must not depend on estimates
-- (issue 8, docs/performance.md). Each branch is written so that only one plan is possible: it runs per argument
-- element, in a LATERAL subquery that cannot be flattened (OFFSET 0, or LIMIT), on that element's index.
--   busy     the LATERAL subquery is fenced (OFFSET 0), so it runs actor by actor with both actor and time as index
--            conditions. Unfenced, the generic plan hash-joined the actors to every busy row of the window found by
--            time alone (the exclusion index searched by its second column), which grows with everyone's bookings.
--   slotted  "does this schedule publish Slots" reads the first usable Slot in (schedule, start) order and stops
--            (LIMIT 1 in a LATERAL subquery, which cannot become a semi-join): the EXISTS form built a bitmap of every
--            Slot of the schedule (50,000 at 1M Slots), and with stale statistics ANDed it with a bitmap of every
--            Slot of the partition.
--   slot     schedule by schedule through slot_schedule_start, as before, now fenced like the others.
--   patient  patient by patient through the token index: a plan starting from the Appointments (possible with the
--            statistics of an empty partition) would read every booked Appointment, the time test being kept away
--            from the indexes, even for no patient at all.
-- The rows returned are migration 0010's (see its comment).
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
                       AND r.sp_tokens && '{status=pending,status=booked,status=arrived,status=checked-in}'::text[]
                       AND lower(r.sp_date) < p_to AND upper(r.sp_date) > p_from - interval '7 days' OFFSET 0) r ON true;
END
$$;
