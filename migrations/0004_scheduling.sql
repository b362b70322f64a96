-- Scheduling: the busy time of every exclusive actor, guarded by an exclusion constraint so that no two blocking
-- Appointments can overlap for one practitioner, room, device or slot, whichever server instance or interface
-- (REST, Bundle, $hold/$book, HL7) wrote them. A trigger on the Appointment partition keeps it in step with the
-- stored Appointments, so no writer can forget it. Also: Device resources, and the short-lived $find proposals.

CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE device PARTITION OF resource FOR VALUES IN ('Device');

CREATE TABLE sched_busy (
    actor          text        NOT NULL,  -- "Practitioner/x", "Location/room", "Device/d", "Slot/s"
    during         tstzrange   NOT NULL,  -- start - buffer-before .. end + buffer-after
    appointment_id text        NOT NULL,
    EXCLUDE USING gist (actor WITH =, during WITH &&)
);
CREATE INDEX sched_busy_appointment ON sched_busy (appointment_id);

-- Holds ($hold: pending Appointments with hold-expires). Kept apart from sched_busy so that booking a hold leaves
-- its busy rows untouched: rewriting them would re-run the exclusion check while rivals wait on those very rows
-- (a deadlock instead of the holder's clean win). A busy row whose hold has expired no longer counts.
CREATE TABLE sched_hold (
    appointment_id text        PRIMARY KEY,
    expires_at     timestamptz NOT NULL
);

-- Proposals handed out by $find, kept for a while so that $hold, $book and a plain read can resolve their ids.
CREATE TABLE sched_proposal (
    set_id     text        PRIMARY KEY,
    bodies     json        NOT NULL,      -- array of Appointment resources (json keeps their key order); id = set_id || '-' || index
    created    timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX sched_proposal_expires ON sched_proposal (expires_at);

-- "Type/id" of a reference (relative or absolute URL, optionally with /_history/n), or NULL when it is not local-looking.
CREATE FUNCTION sched_ref_key(ref text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT substring(regexp_replace(ref, '/_history/[^/]*$', '') FROM '([A-Z][A-Za-z]+/[A-Za-z0-9.-]{1,64})$')
$$;

-- A FHIR Duration (UCUM s, min, h, d) as an interval; NULL when absent or not a time unit.
CREATE FUNCTION sched_duration(d jsonb) RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE coalesce(d ->> 'code', d ->> 'unit')
               WHEN 's' THEN (d ->> 'value')::numeric * interval '1 second'
               WHEN 'min' THEN (d ->> 'value')::numeric * interval '1 minute'
               WHEN 'h' THEN (d ->> 'value')::numeric * interval '1 hour'
               WHEN 'd' THEN (d ->> 'value')::numeric * interval '1 day'
           END
$$;

-- The value of one of our extensions on a resource.
CREATE FUNCTION sched_ext(doc jsonb, tail text) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT e FROM jsonb_array_elements(coalesce(doc -> 'extension', '[]')) e
     WHERE e ->> 'url' = 'http://fhirsched.org/fhir/StructureDefinition/' || tail LIMIT 1
$$;

CREATE FUNCTION sched_blocking_status(status text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT status IN ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled')
$$;

-- R4 Appointment status lifecycle: may an Appointment go from `old` to `new`?
CREATE FUNCTION sched_transition_allowed(old text, new text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT old IS NULL OR old = new OR CASE old
        WHEN 'proposed' THEN new IN ('pending', 'booked', 'cancelled', 'waitlist', 'entered-in-error')
        WHEN 'pending' THEN new IN ('booked', 'cancelled', 'waitlist', 'entered-in-error', 'proposed')
        WHEN 'booked' THEN new IN ('arrived', 'checked-in', 'fulfilled', 'cancelled', 'noshow', 'entered-in-error')
        WHEN 'arrived' THEN new IN ('checked-in', 'fulfilled', 'cancelled', 'noshow', 'entered-in-error')
        WHEN 'checked-in' THEN new IN ('arrived', 'fulfilled', 'cancelled', 'noshow', 'entered-in-error')
        WHEN 'waitlist' THEN new IN ('proposed', 'pending', 'booked', 'cancelled', 'entered-in-error')
        WHEN 'fulfilled' THEN new = 'entered-in-error'
        WHEN 'cancelled' THEN new = 'entered-in-error'
        WHEN 'noshow' THEN new = 'entered-in-error'
        ELSE false
    END
$$;

-- The exclusive actors of an Appointment: practitioners, roles (and the role's practitioner), devices, rooms and beds,
-- and its slots. Patients, buildings and services can be in many appointments at once.
CREATE FUNCTION sched_exclusive_actors(doc jsonb) RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    WITH refs AS (
        SELECT sched_ref_key(p -> 'actor' ->> 'reference') AS k
          FROM jsonb_array_elements(coalesce(doc -> 'participant', '[]')) p
         WHERE coalesce(p ->> 'status', '') <> 'declined'
    ), keyed AS (
        SELECT k, split_part(k, '/', 1) AS t, split_part(k, '/', 2) AS i FROM refs WHERE k IS NOT NULL
    )
    SELECT k FROM keyed WHERE t IN ('Practitioner', 'PractitionerRole', 'Device')
    UNION
    SELECT sched_ref_key(r.body::jsonb -> 'practitioner' ->> 'reference')
      FROM keyed JOIN resource r ON r.res_type = 'PractitionerRole' AND r.id = keyed.i AND NOT r.deleted
     WHERE keyed.t = 'PractitionerRole' AND r.body::jsonb -> 'practitioner' ->> 'reference' IS NOT NULL
    UNION
    SELECT keyed.k
      FROM keyed JOIN resource r ON r.res_type = 'Location' AND r.id = keyed.i AND NOT r.deleted
     WHERE keyed.t = 'Location'
       AND jsonb_path_exists(r.body::jsonb, '$.physicalType.coding[*] ? (@.code == "ro" || @.code == "bd")')
    UNION
    SELECT 'Slot/' || split_part(sched_ref_key(s ->> 'reference'), '/', 2)
      FROM jsonb_array_elements(coalesce(doc -> 'slot', '[]')) s
     WHERE sched_ref_key(s ->> 'reference') LIKE 'Slot/%'
$$;

-- Keeps sched_busy (and sched_hold) equal to the blocking Appointments; raises FS422 for refused status changes.
-- Rows that stay the same are left alone, so that re-writing an Appointment at the same time (booking a hold,
-- changing a comment) never re-checks the exclusion constraint.
CREATE FUNCTION sched_appointment_sync() RETURNS trigger
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
    DELETE FROM sched_busy b
     WHERE b.actor = ANY(actors) AND b.during && span AND b.appointment_id <> NEW.id
       AND EXISTS (SELECT 1 FROM sched_hold h WHERE h.appointment_id = b.appointment_id AND h.expires_at <= now());
    INSERT INTO sched_busy (actor, during, appointment_id)
         SELECT a, span, NEW.id FROM unnest(actors) a
          WHERE NOT EXISTS (SELECT 1 FROM sched_busy b WHERE b.appointment_id = NEW.id AND b.actor = a)
          ORDER BY a;
    RETURN NULL;
END
$$;

-- Only writes of the document matter: re-indexing (`fhirsched migrate`) updates the search columns alone.
CREATE TRIGGER sched_appointment_sync AFTER INSERT OR UPDATE OF body, deleted ON appointment
    FOR EACH ROW EXECUTE FUNCTION sched_appointment_sync();

-- Existing Appointments (written before this migration) take their place in sched_busy; overlaps among them are
-- not resolved here (the migration fails and names them).
UPDATE appointment SET body = body WHERE NOT deleted;

-- The Slots referenced by version p_version (and the one before) of Appointment p_id whose free/busy status no
-- longer matches: free but taken by a blocking non-hold Appointment → busy; busy with no such Appointment → free.
-- Locked, so that the caller can rewrite them in the same transaction.
CREATE FUNCTION sched_slot_changes(p_id text, p_version integer)
RETURNS TABLE (slot_id text, version_id integer, body text, status text)
LANGUAGE sql AS $$
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
                                   EXISTS (SELECT 1 FROM sched_busy b WHERE b.actor = 'Slot/' || s.id
                                                   AND NOT EXISTS (SELECT 1 FROM sched_hold h WHERE h.appointment_id = b.appointment_id))
                                       AS blocked) z) w
     WHERE w.wanted IS NOT NULL
     ORDER BY s.id
       FOR UPDATE OF s
$$;

-- The proposal "<set_id>-<n>" while it lives (no row once expired or unknown).
CREATE FUNCTION sched_proposal_body(p_id text) RETURNS TABLE (body text, created timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT (p.bodies -> x.n)::text, p.created
      FROM (SELECT (substring(p_id FROM '-([0-9]{1,6})$'))::integer AS n) x
      JOIN sched_proposal p ON p.set_id = substring(p_id FROM '^(.*)-[0-9]{1,6}$')
     WHERE p.expires_at > now() AND x.n < json_array_length(p.bodies)
$$;
