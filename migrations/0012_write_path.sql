-- The booking write path, measured in issue 8 (docs/performance.md, "The write path against its storage floor").

-- Which version of the scheduling model (HealthcareService, PractitionerRole, Location, Schedule, Device) is current:
-- a counter every committed write of those types moves on. Each $find, $hold and $book asks it (STMT_MODEL in
-- src/sched/ops.c) instead of fingerprinting every model row, which cost about 0.1 ms for a 20-practitioner clinic and
-- grew with the clinic. The counter lives in the database, so every server instance sees a change at its commit. It
-- starts from the clock, so a database made again under a running server does not reuse an earlier value.
CREATE TABLE sched_model_version (
    single boolean PRIMARY KEY DEFAULT true CHECK (single),
    version bigint NOT NULL
);
INSERT INTO sched_model_version (version) VALUES ((extract(epoch FROM clock_timestamp()) * 1000)::bigint);

CREATE FUNCTION sched_model_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sched_model_version SET version = version + 1;
    RETURN NULL;
END
$$;

-- Deferred to the commit, so the counter's row lock is held only while committing: writers of model resources wait
-- for each other there and nowhere else, and writers of Slots and Appointments never touch it.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['healthcareservice', 'practitionerrole', 'location', 'schedule', 'device'] LOOP
        EXECUTE format('CREATE CONSTRAINT TRIGGER sched_model_changed AFTER INSERT OR UPDATE OR DELETE ON %I '
                       'DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sched_model_changed()', t);
    END LOOP;
END
$$;

-- The same set as migration 0009's, walked participant by participant with one indexed lookup per PractitionerRole
-- or Location: the single UNION query cost 120 µs a write for an IHE $hold's four participants, this about 55 µs.
CREATE OR REPLACE FUNCTION sched_exclusive_actors(doc jsonb) RETURNS SETOF text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    list      jsonb := coalesce(doc -> 'participant', '[]');
    part      jsonb;
    k         text;
    role_of   text;
    found_set text[] := '{}';
BEGIN
    FOR i IN 0 .. jsonb_array_length(list) - 1 LOOP
        part := list -> i;
        CONTINUE WHEN coalesce(part ->> 'status', '') = 'declined';
        k := sched_ref_key(part -> 'actor' ->> 'reference');
        CASE split_part(k, '/', 1)
        WHEN 'Practitioner', 'Device' THEN
            found_set := found_set || k;
        WHEN 'PractitionerRole' THEN
            -- the role, and the practitioner who fills it
            SELECT sched_ref_key(r.body::jsonb -> 'practitioner' ->> 'reference') INTO role_of
              FROM resource r WHERE r.res_type = 'PractitionerRole' AND r.id = split_part(k, '/', 2) AND NOT r.deleted;
            found_set := found_set || k || role_of;
        WHEN 'Location' THEN
            -- only rooms and beds are booked exclusively, not a whole site
            IF EXISTS (SELECT 1 FROM resource r
                        WHERE r.res_type = 'Location' AND r.id = split_part(k, '/', 2) AND NOT r.deleted
                          AND jsonb_path_exists(r.body::jsonb, '$.physicalType.coding[*] ? (@.code == "ro" || @.code == "bd")')) THEN
                found_set := found_set || k;
            END IF;
        ELSE
            NULL;
        END CASE;
    END LOOP;
    list := coalesce(doc -> 'slot', '[]');
    FOR i IN 0 .. jsonb_array_length(list) - 1 LOOP
        k := sched_ref_key(list -> i ->> 'reference');
        IF starts_with(k, 'Slot/') THEN
            found_set := found_set || k;
        END IF;
    END LOOP;
    RETURN QUERY SELECT DISTINCT a FROM unnest(found_set) a WHERE a IS NOT NULL;
END
$$;

-- Migration 0007's trigger, which parsed every Appointment version to decide on an SIU event even when no endpoint
-- is configured (the common case for a FHIR-only clinic): now it first asks whether any endpoint is enabled.
CREATE OR REPLACE FUNCTION hl7_outbox_queue() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_doc jsonb;
    new_doc jsonb;
    ev      text;
    origin  text;
    n       integer;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM hl7_endpoint WHERE enabled) THEN
        RETURN NULL;
    END IF;
    origin := coalesce(current_setting('fhirsched.hl7_origin', true), '');
    IF TG_OP = 'UPDATE' AND NOT OLD.deleted THEN
        old_doc := OLD.body::jsonb;
    END IF;
    IF NOT NEW.deleted THEN
        new_doc := NEW.body::jsonb;
    END IF;
    ev := hl7_siu_event(old_doc, new_doc);
    IF ev IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO hl7_outbox (endpoint, appointment_id, version_id, event)
         SELECT e.name, NEW.id, NEW.version_id, ev
           FROM hl7_endpoint e
          WHERE e.enabled AND ev = ANY (e.events)
            AND NOT (origin <> '' AND split_part(origin, '|', 1) = e.receiving_application
                     AND (e.receiving_facility = '' OR split_part(origin, '|', 2) = e.receiving_facility));
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM pg_notify('fhirsched_hl7', '');
    END IF;
    RETURN NULL;
END
$$;
