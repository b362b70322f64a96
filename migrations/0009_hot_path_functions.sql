-- Hot-path functions (issue 8, docs/performance.md "Where the time went").
--
-- fhir_instant is STABLE, as the to_char it calls is: an IMMUTABLE SQL function whose body is only STABLE is never
-- inlined, so every read paid a function call per row (PostgreSQL's own read rate of our read statement: 30k -> 52k
-- per second). No index depends on it.
ALTER FUNCTION fhir_instant(timestamptz) STABLE;

-- A SQL function that cannot be inlined (it has a FROM clause, returns a set, or is called with a non-trivial argument)
-- is planned again in every transaction that calls it; sched_slot_changes alone cost 3 ms of planning per Appointment
-- write. The same queries in PL/pgSQL keep their plans for the session. Bodies are unchanged.

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
                                   EXISTS (SELECT 1 FROM sched_busy b WHERE b.actor = 'Slot/' || s.id
                                                   AND NOT EXISTS (SELECT 1 FROM sched_hold h WHERE h.appointment_id = b.appointment_id))
                                       AS blocked) z) w
     WHERE w.wanted IS NOT NULL
     ORDER BY s.id
       FOR UPDATE OF s;
END
$$;

CREATE OR REPLACE FUNCTION sched_duration(d jsonb) RETURNS interval
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN CASE coalesce(d ->> 'code', d ->> 'unit')
               WHEN 's' THEN (d ->> 'value')::numeric * interval '1 second'
               WHEN 'min' THEN (d ->> 'value')::numeric * interval '1 minute'
               WHEN 'h' THEN (d ->> 'value')::numeric * interval '1 hour'
               WHEN 'd' THEN (d ->> 'value')::numeric * interval '1 day'
           END;
END
$$;

CREATE OR REPLACE FUNCTION sched_ext(doc jsonb, tail text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN (SELECT e FROM jsonb_array_elements(coalesce(doc -> 'extension', '[]')) e
             WHERE e ->> 'url' = 'http://fhirsched.org/fhir/StructureDefinition/' || tail LIMIT 1);
END
$$;

CREATE OR REPLACE FUNCTION fhir_index_row(p_index jsonb, OUT v smallint, OUT tokens text[], OUT txt text, OUT during tstzrange,
                                          OUT sortkeys jsonb, OUT geo point)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    v := (p_index ->> 'v')::smallint;
    tokens := ARRAY(SELECT jsonb_array_elements_text(coalesce(p_index -> 't', '[]')));
    txt := coalesce(p_index ->> 's', '');
    during := CASE WHEN p_index ? 'd' THEN fhir_period_range(p_index -> 'd' ->> 0, p_index -> 'd' ->> 1) END;
    sortkeys := coalesce(p_index -> 'o', '{}');
    geo := CASE WHEN p_index ? 'g' THEN point((p_index -> 'g' ->> 1)::float8, (p_index -> 'g' ->> 0)::float8) END;
END
$$;

CREATE OR REPLACE FUNCTION sched_exclusive_actors(doc jsonb) RETURNS SETOF text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
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
     WHERE sched_ref_key(s ->> 'reference') LIKE 'Slot/%';
END
$$;
