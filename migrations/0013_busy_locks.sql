-- Concurrent bookings of one time wait for each other instead of deadlocking (issue 8, docs/performance.md, "The
-- contended run's stall").
--
-- sched_busy's exclusion constraint inserts the index entry first and checks for overlaps after. Two transactions
-- inserting overlapping rows of one actor at once each find the other's uncommitted row and wait for the other's
-- transaction: a deadlock, which PostgreSQL finds only after deadlock_timeout (1 s) and resolves by aborting one. With
-- every client chasing the same time (the contended bench scenario) these came in chains: requests waited 2 to 8
-- seconds and 27 deadlocks were logged in one 10 s run. No double booking ever got through (the constraint decides),
-- but a patient portal would have shown a spinner for seconds.
--
-- Each writer of busy rows now first takes a transaction-level advisory lock per (actor, hour of its span, counted
-- in whole hours since the epoch), in one global order (the keys' values). Overlapping rows share an actor and at
-- least one hour, so the second writer waits for the first to commit or roll back, then inserts and meets a committed
-- row: a clean conflict at once. Writers of the same actor in other hours, and of other actors, do not wait for each
-- other. A span of more than 48 hours takes one key per actor (the whole actor) instead: such a writer and a short one
-- on the same actor do not share a key, and are back to the constraint's check (and PostgreSQL's deadlock detection)
-- between themselves only.
-- Keys are 64-bit hashes: a collision only makes two unrelated writers wait for each other.
-- A transaction takes at most 256 of these locks (counted in a transaction-local setting): they are held to its end
-- and live in PostgreSQL's shared lock table, which an import of tens of thousands of Appointments in one transaction
-- would exhaust ("out of shared memory"). Past that count a writer takes none, as before this migration.
CREATE FUNCTION sched_lock_busy(actors text[], span tstzrange) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    first_hour bigint;
    last_hour  bigint;
    keys       bigint[];
    taken      integer := coalesce(nullif(current_setting('fhirsched.busy_locks', true), ''), '0')::integer;
    k          bigint;
BEGIN
    IF NOT lower_inf(span) AND NOT upper_inf(span) THEN
        first_hour := floor(extract(epoch FROM lower(span)) / 3600);
        last_hour := floor((extract(epoch FROM upper(span)) - 0.000001) / 3600);
    END IF;
    IF first_hour IS NULL OR last_hour - first_hour >= 48 THEN
        keys := ARRAY(SELECT DISTINCT hashtextextended(a, 0) FROM unnest(actors) a ORDER BY 1);
    ELSE
        keys := ARRAY(SELECT DISTINCT hashtextextended(a || '@' || h, 0)
                        FROM unnest(actors) a, generate_series(first_hour, last_hour) h ORDER BY 1);
    END IF;
    IF taken + cardinality(keys) > 256 THEN
        RETURN;
    END IF;
    PERFORM set_config('fhirsched.busy_locks', (taken + cardinality(keys))::text, true);
    -- A loop, not one statement: the locks must be taken in key order, and a volatile function in a select list may
    -- be evaluated before the sort.
    FOREACH k IN ARRAY keys LOOP
        PERFORM pg_advisory_xact_lock(k);
    END LOOP;
END
$$;

-- migration 0010's sched_appointment_sync(): it now works out first which actors need a busy row, and calls
-- sched_lock_busy() for those before writing them
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
    -- The actors that need a busy row (booking a hold needs none: its rows stay, and its $book queues for nothing).
    actors := ARRAY(SELECT a FROM unnest(actors) a
                     WHERE NOT EXISTS (SELECT 1 FROM sched_busy b WHERE b.appointment_id = NEW.id AND b.actor = a) ORDER BY a);
    IF cardinality(actors) = 0 THEN
        RETURN NULL;
    END IF;
    -- Writers of overlapping busy rows queue here, one at a time, instead of deadlocking in the constraint's check.
    PERFORM sched_lock_busy(actors, span);
    -- Expired holds in the way stop counting now; then the constraint decides. Sorted inserts keep two writers from
    -- taking actors in opposite orders (a deadlock instead of a clean conflict).
    IF EXISTS (SELECT 1 FROM sched_hold WHERE expires_at <= now()) THEN
        DELETE FROM sched_busy b
         WHERE b.actor = ANY(actors) AND b.during && span AND b.appointment_id <> NEW.id
           AND EXISTS (SELECT 1 FROM sched_hold h WHERE h.appointment_id = b.appointment_id AND h.expires_at <= now());
    END IF;
    INSERT INTO sched_busy (actor, during, appointment_id) SELECT a, span, NEW.id FROM unnest(actors) a ORDER BY a;
    RETURN NULL;
END
$$;
