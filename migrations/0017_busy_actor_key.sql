-- The busy table's exclusion constraint led by a 64-bit key of the actor (issue 8, docs/performance.md, "The busy rows'
-- exclusion key").
--
-- sched_busy's constraint was `EXCLUDE USING gist (actor WITH =, during WITH &&)`: btree_gist's text operator class
-- compares whole strings at every entry an insert passes, and an insert (the GiST insert and the constraint's probe)
-- cost 54-59 us at 20,000 busy rows and 85 us at 230,000 (loops of 1,000 inserts); led by hashtextextended(actor, 0),
-- a bigint, the same inserts cost 26-29 and 38 us. Every booked or held Appointment writes one such row per exclusive
-- actor.
--
-- The actor stays in the constraint, last: the key narrows the search, the actor decides. So two actors sharing a key
-- never conflict, and a conflict's message still names the actor (src/fhir/interaction.c reads it from there). The key
-- is a stored generated column, so every writer (the trigger below, bulk loads, the bench's clones) gets it without
-- naming it; hashtextextended() is what hash partitioning stores rows by, which PostgreSQL keeps stable across versions
-- (a stored key must match the one computed for the same actor later). The constraint keeps its name, which conflict
-- messages and tests show.

ALTER TABLE sched_busy ADD COLUMN actor_key bigint GENERATED ALWAYS AS (hashtextextended(actor, 0)) STORED;
ALTER TABLE sched_busy DROP CONSTRAINT sched_busy_actor_during_excl;
ALTER TABLE sched_busy ADD CONSTRAINT sched_busy_actor_during_excl
    EXCLUDE USING gist (actor_key WITH =, during WITH &&, actor WITH =);

-- The readers of busy rows by actor, as before (sched_load as in 0016_booking_plans.sql, sched_slot_changes as in
-- 0009_hot_path_functions.sql, sched_appointment_sync as in 0015_write_derivations.sql), with the key as the index
-- condition: the actor alone no longer reaches the index. The trigger clears expired holds actor by actor: a GiST
-- index cannot take `= ANY (array)` as a condition, and the plans PostgreSQL kept for the array (or for a join with
-- it) scanned by time alone, reading every actor's rows of that time.

CREATE OR REPLACE FUNCTION sched_load(p_actors text[], p_schedules text[], p_from timestamptz, p_to timestamptz, p_patients text[])
RETURNS TABLE (kind text, key text, lo text, hi text, extra text)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan SET max_parallel_workers_per_gather = 0 AS $$
BEGIN
    RETURN QUERY
    SELECT 'busy', b.actor, extract(epoch FROM lower(b.during))::bigint::text, extract(epoch FROM upper(b.during))::bigint::text,
           b.appointment_id
      FROM unnest(p_actors) a
      JOIN LATERAL (SELECT * FROM sched_busy
                     WHERE actor_key = hashtextextended(a, 0) AND actor = a AND during && tstzrange(p_from, p_to) OFFSET 0) b ON true
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

CREATE OR REPLACE FUNCTION sched_slot_changes(p_id text, p_version integer)
RETURNS TABLE (slot_id text, version_id integer, body text, status text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH refs AS (
        SELECT DISTINCT split_part(sched_ref_key(x ->> 'reference'), '/', 2) AS sid
          FROM resource_history h, jsonb_array_elements(coalesce(h.body::jsonb -> 'slot', '[]')) x
         WHERE h.res_type = 'Appointment' AND h.id = p_id AND h.version_id IN (p_version, p_version - 1)
           AND h.body IS NOT NULL AND sched_ref_key(x ->> 'reference') LIKE 'Slot/%'
    )
    SELECT s.id, s.version_id, s.body, w.wanted
      FROM refs JOIN resource s ON s.res_type = 'Slot' AND s.id = refs.sid AND NOT s.deleted,
           LATERAL (SELECT CASE WHEN blocked AND st = 'free' THEN 'busy' WHEN NOT blocked AND st = 'busy' THEN 'free' END AS wanted
                      FROM (SELECT s.body::jsonb ->> 'status' AS st,
                                   EXISTS (SELECT 1 FROM sched_busy b
                                            WHERE b.actor_key = hashtextextended('Slot/' || s.id, 0) AND b.actor = 'Slot/' || s.id
                                                   AND NOT EXISTS (SELECT 1 FROM sched_hold h WHERE h.appointment_id = b.appointment_id))
                                       AS blocked) z) w
     WHERE w.wanted IS NOT NULL
     ORDER BY s.id
       FOR UPDATE OF s;
END
$$;

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
    fresh      boolean := TG_OP = 'INSERT'; -- a new row: it has no hold or busy rows of its own yet
    one_actor  text;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.body IS NOT NULL AND NOT OLD.deleted THEN
        old_status := OLD.body::jsonb ->> 'status';
    END IF;
    IF NOT fresh THEN
        DELETE FROM sched_hold WHERE appointment_id = NEW.id;
    END IF;
    IF NEW.deleted OR NEW.body IS NULL THEN
        IF NOT fresh THEN
            DELETE FROM sched_busy WHERE appointment_id = NEW.id;
        END IF;
        RETURN NULL;
    END IF;
    doc := NEW.body::jsonb;
    new_status := doc ->> 'status';
    IF NOT sched_transition_allowed(old_status, new_status) THEN
        RAISE EXCEPTION USING ERRCODE = 'FS422',
            MESSAGE = format('an Appointment cannot go from status %s to %s', old_status, new_status);
    END IF;
    IF NOT sched_blocking_status(new_status) THEN
        IF NOT fresh THEN
            DELETE FROM sched_busy WHERE appointment_id = NEW.id;
        END IF;
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
            IF NOT fresh THEN
                DELETE FROM sched_busy WHERE appointment_id = NEW.id;
            END IF;
            RETURN NULL; -- an expired hold blocks nothing
        END IF;
        IF expires IS NOT NULL THEN
            INSERT INTO sched_hold (appointment_id, expires_at) VALUES (NEW.id, expires);
        END IF;
    END IF;
    actors := ARRAY(SELECT a FROM sched_exclusive_actors(doc) a ORDER BY a);
    IF NOT fresh THEN
        DELETE FROM sched_busy WHERE appointment_id = NEW.id AND NOT (actor = ANY(actors) AND during = span);
        -- The actors that need a busy row (booking a hold needs none: its rows stay, and its $book queues for nothing).
        actors := ARRAY(SELECT a FROM unnest(actors) a
                         WHERE NOT EXISTS (SELECT 1 FROM sched_busy b WHERE b.appointment_id = NEW.id AND b.actor = a) ORDER BY a);
    END IF;
    IF cardinality(actors) = 0 THEN
        RETURN NULL;
    END IF;
    -- Writers of overlapping busy rows queue here, one at a time, instead of deadlocking in the constraint's check.
    PERFORM sched_lock_busy(actors, span);
    -- Expired holds in the way stop counting now; then the constraint decides. Sorted inserts keep two writers from
    -- taking actors in opposite orders (a deadlock instead of a clean conflict).
    IF EXISTS (SELECT 1 FROM sched_hold WHERE expires_at <= now()) THEN
        FOREACH one_actor IN ARRAY actors LOOP
            DELETE FROM sched_busy b
             WHERE b.actor_key = hashtextextended(one_actor, 0) AND b.actor = one_actor AND b.during && span AND b.appointment_id <> NEW.id
               AND EXISTS (SELECT 1 FROM sched_hold h WHERE h.appointment_id = b.appointment_id AND h.expires_at <= now());
        END LOOP;
    END IF;
    INSERT INTO sched_busy (actor, during, appointment_id) SELECT a, span, NEW.id FROM unnest(actors) a ORDER BY a;
    RETURN NULL;
END
$$;
