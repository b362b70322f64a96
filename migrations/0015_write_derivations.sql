-- Cheaper derivations on the write path (issue 8, docs/performance.md, "Seeding: pipelined transaction Bundles" and
-- "Creates skip their own busy rows").
--
-- A transaction Bundle runs in one backend, which seeding now keeps busy (its entries are pipelined). Per Slot PUT,
-- function statistics (track_functions = all) showed about 60 us in the access-token trigger and its helpers and
-- 15 us in two fhir_date_range() calls, of about 260 us of PostgreSQL time. Per Appointment create, two statements of
-- sched_appointment_sync() about the Appointment's own earlier busy rows cost more than the rest of the trigger, and
-- its access tokens looked for Slots and Locations it did not have.

-- sec_derived_tokens() as in 0005_security.sql, but an Appointment without a "slot" element skips the Slots' sites
-- (a jsonpath query and a function call that found nothing), and a Slot's tokens (its Schedule's sites and owners)
-- are read by one statement instead of five nested function calls (sec_ref_keys, sec_pick three times,
-- sec_row_tokens). Same rows, same result: the key is normalised by sched_ref_key(), only a Schedule reference counts,
-- a deleted Schedule gives nothing, and the result is made distinct and sorted below as before. The reference is read
-- by its path rather than with jsonpath, which would also have read an array of References (invalid for a Slot, never
-- stored). A statement joining the jsonpath query to the row was tried first: PostgreSQL planned it again at every
-- call (75 us).
CREATE OR REPLACE FUNCTION sec_derived_tokens(p_type text, p_id text, doc jsonb) RETURNS text[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
    ref    text;
    keys   text[];
    tokens text[];
    sites  text[] := '{}';
    owners text[] := '{}';
BEGIN
    CASE p_type
    WHEN 'Location' THEN
        keys := sec_ref_keys(doc, '$.partOf.reference');
        sites := ARRAY['_site=Location/' || p_id]
              || sec_location_sites(ARRAY(SELECT substr(k, 10) FROM unnest(keys) k WHERE starts_with(k, 'Location/')), p_id);
    WHEN 'PractitionerRole' THEN
        SELECT a.sites INTO sites FROM sec_actor_tokens(sec_pick(sec_ref_keys(doc, '$.location[*].reference'), 'Location/')) a;
        owners := ARRAY(SELECT '_owner=' || k FROM unnest(sec_ref_keys(doc, '$.practitioner.reference')) k
                         WHERE starts_with(k, 'Practitioner/'));
    WHEN 'HealthcareService', 'Device' THEN
        SELECT a.sites INTO sites FROM sec_actor_tokens(sec_pick(sec_ref_keys(doc, '$.location[*].reference'), 'Location/')) a;
    WHEN 'Practitioner' THEN
        sites := sec_practitioner_sites(p_id);
        owners := ARRAY['_owner=Practitioner/' || p_id];
    WHEN 'Schedule' THEN
        SELECT a.sites, a.owners INTO sites, owners FROM sec_actor_tokens(sec_ref_keys(doc, '$.actor[*].reference')) a;
    WHEN 'Slot' THEN
        -- Slot.schedule is one Reference (1..1, validated): one key, one row, one statement.
        ref := sched_ref_key(doc #>> '{schedule,reference}');
        IF starts_with(ref, 'Schedule/') THEN
            SELECT array_agg(t) FILTER (WHERE starts_with(t, '_site=Location/')),
                   array_agg(t) FILTER (WHERE starts_with(t, '_owner=Practitioner/'))
              INTO sites, owners
              FROM resource r CROSS JOIN LATERAL unnest(r.sp_tokens) t
             WHERE r.res_type = 'Schedule' AND r.id = substr(ref, 10) AND NOT r.deleted;
            sites := coalesce(sites, '{}');
            owners := coalesce(owners, '{}');
        END IF;
    WHEN 'Appointment' THEN
        SELECT a.sites, a.owners INTO sites, owners FROM sec_actor_tokens(sec_ref_keys(doc, '$.participant[*].actor.reference')) a;
        IF doc ? 'slot' THEN -- most Appointments have no Slots: no jsonpath query, no loop
            sites := sites || sec_linked_sites(sec_ref_keys(doc, '$.slot[*].reference'), 'Slot');
        END IF;
    WHEN 'AppointmentResponse' THEN
        sites := sec_linked_sites(sec_ref_keys(doc, '$.appointment.reference'), 'Appointment');
        FOREACH ref IN ARRAY sec_ref_keys(doc, '$.actor.reference') LOOP
            IF starts_with(ref, 'Practitioner/') THEN
                owners := owners || ('_owner=' || ref);
            ELSIF starts_with(ref, 'PractitionerRole/') THEN
                owners := owners || sec_pick(sec_row_tokens('PractitionerRole', substr(ref, 18)), '_owner=Practitioner/');
            END IF;
        END LOOP;
    ELSE
        RETURN '{}';
    END CASE;
    IF cardinality(sites) = 0 THEN
        sites := ARRAY['_site=none'];
    END IF;
    RETURN ARRAY(SELECT DISTINCT t FROM unnest(sites || owners) t ORDER BY t);
END
$$;


-- sec_actor_tokens() as in 0005_security.sql, but without the walk up the Locations when there are none (most
-- Appointments and Schedules name no Location among their actors): sec_location_sites() of no Location is empty, and
-- its call, with a SET clause, cost about 15 us a write.
CREATE OR REPLACE FUNCTION sec_actor_tokens(keys text[], OUT sites text[], OUT owners text[])
LANGUAGE plpgsql STABLE AS $$
DECLARE
    ref       text;
    id        text;
    tokens    text[];
    locations text[] := '{}';
BEGIN
    sites := '{}';
    owners := '{}';
    FOREACH ref IN ARRAY keys LOOP
        id := split_part(ref, '/', 2);
        CASE split_part(ref, '/', 1)
        WHEN 'Location' THEN
            locations := locations || id;
        WHEN 'PractitionerRole' THEN
            tokens := sec_row_tokens('PractitionerRole', id);
            sites := sites || sec_pick(tokens, '_site=Location/');
            owners := owners || sec_pick(tokens, '_owner=Practitioner/');
        WHEN 'HealthcareService' THEN
            sites := sites || sec_pick(sec_row_tokens('HealthcareService', id), '_site=Location/');
        WHEN 'Practitioner' THEN
            sites := sites || sec_pick(sec_row_tokens('Practitioner', id), '_site=Location/');
            owners := owners || ('_owner=' || ref);
        ELSE
            NULL; -- Patients, Devices, ... belong to no clinic
        END CASE;
    END LOOP;
    IF cardinality(locations) > 0 THEN
        sites := sites || sec_location_sites(locations);
    END IF;
END
$$;


-- fhir_date_range() as in 0002_search_functions.sql with the seconds-precision shape tested first: the one of every
-- Slot and Appointment start and end. The shapes exclude one another, so the order changes no answer; each shape
-- tested and missed before cost about 0.5 us.
CREATE OR REPLACE FUNCTION fhir_date_range(v text) RETURNS tstzrange
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    lo timestamptz;
    width interval;
BEGIN
    IF v IS NULL THEN
        RETURN NULL;
    ELSIF v ~ '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})?$' THEN
        lo := (CASE WHEN v ~ '(Z|[+-]\d{2}:\d{2})$' THEN v ELSE v || 'Z' END)::timestamptz; width := interval '1 second';
    ELSIF v ~ '^\d{4}$' THEN
        lo := (v || '-01-01T00:00:00Z')::timestamptz; width := interval '1 year';
    ELSIF v ~ '^\d{4}-\d{2}$' THEN
        lo := (v || '-01T00:00:00Z')::timestamptz; width := interval '1 month';
    ELSIF v ~ '^\d{4}-\d{2}-\d{2}$' THEN
        lo := (v || 'T00:00:00Z')::timestamptz; width := interval '1 day';
    ELSIF v ~ '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})?$' THEN
        lo := (CASE WHEN v ~ '(Z|[+-]\d{2}:\d{2})$' THEN v ELSE v || 'Z' END)::timestamptz; width := interval '1 minute';
    ELSIF v ~ '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+(Z|[+-]\d{2}:\d{2})?$' THEN
        lo := (CASE WHEN v ~ '(Z|[+-]\d{2}:\d{2})$' THEN v ELSE v || 'Z' END)::timestamptz;
        width := interval '1 millisecond';
    ELSE
        RETURN NULL;
    END IF;
    RETURN tstzrange(lo, lo + width, '[)');
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

-- sched_appointment_sync() as in 0013_busy_locks.sql, but a new row (an INSERT: a create, $hold, an HL7 S12) skips the
-- statements about its own hold and busy rows, which cannot exist yet: only this trigger writes them, keyed by the
-- Appointment's id, and Appointment rows are never removed (only AuditEvents are purged). Besides saving the
-- statements, this keeps creates off their kept plans, which each connection made once: a connection that planned them
-- while sched_busy was empty kept a sequential scan, read every busy row of the clinic at every create, and slowed
-- down as the table grew (300 us each after 8,000 creates at 32 clients; autoanalyze would replan them only after
-- its next round). Updates, which need them, are unchanged.
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
        DELETE FROM sched_busy b
         WHERE b.actor = ANY(actors) AND b.during && span AND b.appointment_id <> NEW.id
           AND EXISTS (SELECT 1 FROM sched_hold h WHERE h.appointment_id = b.appointment_id AND h.expires_at <= now());
    END IF;
    INSERT INTO sched_busy (actor, during, appointment_id) SELECT a, span, NEW.id FROM unnest(actors) a ORDER BY a;
    RETURN NULL;
END
$$;
