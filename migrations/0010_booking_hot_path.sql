-- Booking hot path (issue 8, docs/performance.md). $hold and $book spent a third of PostgreSQL's time planning and a
-- tenth in one regular expression.

-- sched_ref_key without a regular expression for the shapes references have ("Type/id", "<base>/Type/id", either with
-- "/_history/n"): the unanchored regex cost ~25 us a call, and every Appointment write calls it a dozen times. Any
-- other shape takes the original expression, so every result is what it was (index and busy keys stay valid).
CREATE OR REPLACE FUNCTION sched_ref_key(ref text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    parts text[] := string_to_array(ref, '/');
    n     integer := coalesce(cardinality(parts), 0);
    t     text;
    i     text;
BEGIN
    IF n >= 3 AND parts[n - 1] = '_history' THEN
        n := n - 2;
    END IF;
    IF n < 2 THEN
        RETURN NULL;
    END IF;
    t := parts[n - 1];
    i := parts[n];
    IF length(i) BETWEEN 1 AND 64 AND translate(i, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-', '') = ''
       AND length(t) >= 2 AND ascii(t) BETWEEN 65 AND 90
       AND translate(t, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', '') = '' THEN
        RETURN t || '/' || i;
    END IF;
    RETURN substring(regexp_replace(ref, '/_history/[^/]*$', '') FROM '([A-Z][A-Za-z]+/[A-Za-z0-9.-]{1,64})$');
END
$$;

-- Removing expired holds in the way was planned again on every blocking write (0.4 ms) although there rarely is one:
-- the sweeper deletes them. Only the guard runs now when there is none. Otherwise as in 0004_scheduling.sql.
CREATE OR REPLACE FUNCTION sched_appointment_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    doc        jsonb;
    old_status text;
    new_status text;
    t_start    timestamptz;
    t_end      timestamptz;
    span       tstzrange;
    expires    timestamptz;
    actors     text[];
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.body IS NOT NULL AND NOT OLD.deleted THEN
        old_status := OLD.body::jsonb ->> 'status';
    END IF;
    DELETE FROM sched_hold WHERE appointment_id = NEW.id;
    IF NEW.deleted OR NEW.body IS NULL THEN
        DELETE FROM sched_busy WHERE appointment_id = NEW.id;
        RETURN NULL;
    END IF;
    doc := NEW.body::jsonb;
    new_status := doc ->> 'status';
    IF NOT sched_transition_allowed(old_status, new_status) THEN
        RAISE EXCEPTION USING ERRCODE = 'FS422',
            MESSAGE = format('an Appointment cannot go from status %s to %s', old_status, new_status);
    END IF;
    IF NOT sched_blocking_status(new_status) THEN
        DELETE FROM sched_busy WHERE appointment_id = NEW.id;
        RETURN NULL;
    END IF;
    t_start := (doc ->> 'start')::timestamptz;
    t_end := (doc ->> 'end')::timestamptz;
    IF t_start IS NULL OR t_end IS NULL OR t_end <= t_start THEN
        RAISE EXCEPTION USING ERRCODE = 'FS422',
            MESSAGE = format('an Appointment with status %s needs a start and an end after it', new_status);
    END IF;
    span := tstzrange(t_start - coalesce(sched_duration(sched_ext(doc, 'buffer-before') -> 'valueDuration'), interval '0'),
                      t_end + coalesce(sched_duration(sched_ext(doc, 'buffer-after') -> 'valueDuration'), interval '0'), '[)');
    IF new_status = 'pending' THEN
        expires := (sched_ext(doc, 'hold-expires') ->> 'valueInstant')::timestamptz;
        IF expires IS NOT NULL AND expires <= now() THEN
            DELETE FROM sched_busy WHERE appointment_id = NEW.id;
            RETURN NULL; -- an expired hold blocks nothing
        END IF;
        IF expires IS NOT NULL THEN
            INSERT INTO sched_hold (appointment_id, expires_at) VALUES (NEW.id, expires);
        END IF;
    END IF;
    actors := ARRAY(SELECT a FROM sched_exclusive_actors(doc) a ORDER BY a);
    DELETE FROM sched_busy WHERE appointment_id = NEW.id AND NOT (actor = ANY(actors) AND during = span);
    -- Expired holds in the way stop counting now; then the constraint decides. Sorted inserts keep two writers from
    -- taking actors in opposite orders (a deadlock instead of a clean conflict).
    IF EXISTS (SELECT 1 FROM sched_hold WHERE expires_at <= now()) THEN
        DELETE FROM sched_busy b
         WHERE b.actor = ANY(actors) AND b.during && span AND b.appointment_id <> NEW.id
           AND EXISTS (SELECT 1 FROM sched_hold h WHERE h.appointment_id = b.appointment_id AND h.expires_at <= now());
    END IF;
    INSERT INTO sched_busy (actor, during, appointment_id)
         SELECT a, span, NEW.id FROM unnest(actors) a
          WHERE NOT EXISTS (SELECT 1 FROM sched_busy b WHERE b.appointment_id = NEW.id AND b.actor = a)
          ORDER BY a;
    RETURN NULL;
END
$$;


-- The Slots of a Schedule by start, for sched_load. The schedule is the sort key's text, which is the reference token's
-- value (Slot.schedule is 1..1).
CREATE INDEX slot_schedule_start ON slot ((sp_sort ->> 'schedule'), lower(sp_date)) WHERE NOT deleted;

-- What an availability computation reads (src/sched/ops.c, on_load), in rows (kind, key, lo, hi, extra):
--   busy     actor, start and end (epoch seconds), appointment id     busy rows of the actors in [p_from, p_to)
--   slot     Slot id, start (epoch s), end (instant), "status schedule" Slots of the schedules starting in
--                                                                       [p_from - 7 days, p_to)
--   slotted  "schedule=Schedule/x"                                    which of the schedules publish Slots at all
--   patient  "Patient/x", body                                        the patients' blocking Appointments
-- A function so that its plan is made once per session: as a prepared statement PostgreSQL planned it again on every
-- call (0.7 ms, more than running it), because its generic plan was a parallel one. A Slot comes from its search
-- columns, never its body (parsing ~10k Slot bodies was most of a month-long $find). Busy rows are looked up actor by
-- actor, so that the exclusion index is searched by actor and time (GiST cannot take "= ANY": it scanned every actor's
-- rows of the window); a schedule's Slots through slot_schedule_start, schedule by schedule and by start (the token
-- index hands over every Slot the schedule ever had, 50,000 each at 1M Slots, before the time test, and "does this
-- schedule publish Slots" built that whole bitmap to see one row); a patient's Appointments are found by the patient's
-- token, and the time test is written so that no index takes it (the time index walks everyone's Appointments of
-- those days).
CREATE FUNCTION sched_load(p_actors text[], p_schedules text[], p_from timestamptz, p_to timestamptz, p_patients text[])
RETURNS TABLE (kind text, key text, lo text, hi text, extra text)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan SET max_parallel_workers_per_gather = 0 AS $$
BEGIN
    RETURN QUERY
    SELECT 'busy', b.actor, extract(epoch FROM lower(b.during))::bigint::text, extract(epoch FROM upper(b.during))::bigint::text,
           b.appointment_id
      FROM unnest(p_actors) a
      JOIN LATERAL (SELECT * FROM sched_busy WHERE actor = a AND during && tstzrange(p_from, p_to)) b ON true
     WHERE NOT EXISTS (SELECT 1 FROM sched_hold h WHERE h.appointment_id = b.appointment_id AND h.expires_at <= now())
    UNION ALL
    SELECT 'slot', r.id, date_part('epoch', lower(r.sp_date))::bigint::text,
           coalesce(r.sp_sort ->> '_end', r.body::json ->> 'end'), (r.sp_sort ->> 'status') || ' ' || (r.sp_sort ->> 'schedule')
      FROM unnest(p_schedules) s
      JOIN resource r ON r.res_type = 'Slot' AND NOT r.deleted AND r.sp_sort ->> 'schedule' = substr(s, length('schedule=') + 1)
       AND lower(r.sp_date) >= p_from - interval '7 days' AND lower(r.sp_date) < p_to
    UNION ALL
    SELECT 'slotted', s, NULL, NULL, NULL
      FROM unnest(p_schedules) s
     WHERE EXISTS (SELECT 1 FROM resource r WHERE r.res_type = 'Slot' AND NOT r.deleted
                      AND r.sp_sort ->> 'schedule' = substr(s, length('schedule=') + 1)
                      AND NOT r.sp_tokens && '{status=busy-unavailable,status=entered-in-error}'::text[])
    UNION ALL
    SELECT 'patient', p, NULL, NULL, r.body
      FROM unnest(p_patients) p
      JOIN resource r ON r.res_type = 'Appointment' AND NOT r.deleted AND r.sp_tokens @> ARRAY['patient=' || p]
       AND r.sp_tokens && '{status=pending,status=booked,status=arrived,status=checked-in}'::text[]
       AND lower(r.sp_date) < p_to AND upper(r.sp_date) > p_from - interval '7 days';
END
$$;
