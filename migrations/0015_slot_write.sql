-- Cheaper derived columns of a Slot write (issue 8, docs/performance.md, "Seeding: one PostgreSQL backend").
--
-- A transaction Bundle runs in one backend, which seeding now keeps busy (its entries are pipelined). Per Slot PUT,
-- function statistics (track_functions = all) showed about 60 us in the access-token trigger and its helpers and
-- 15 us in two fhir_date_range() calls, of about 260 us of PostgreSQL time.

-- sec_derived_tokens() as in 0005_security.sql, but a Slot's tokens (its Schedule's sites and owners) are read by one
-- statement instead of five nested function calls (sec_ref_keys, sec_pick three times, sec_row_tokens). Same rows,
-- same result: the key is normalised by sched_ref_key(), only a Schedule reference counts, a deleted Schedule gives
-- nothing, and the result is made distinct and sorted below as before. The reference is read by its path rather than
-- with jsonpath, which would also have read an array of References (invalid for a Slot, never stored). A statement
-- joining the jsonpath query to the row was tried first: PostgreSQL planned it again at every call (75 us).
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
        sites := sites || sec_linked_sites(sec_ref_keys(doc, '$.slot[*].reference'), 'Slot');
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
