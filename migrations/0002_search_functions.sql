-- Helpers for FHIR date search: every date, dateTime, instant or Period value is compared as a time range
-- [lower, upper) whose width is the value's precision (FHIR R4 search, "Date" parameters).

-- Range of a FHIR date/dateTime/instant text: "2026" is the whole year, "2026-03-04T10:00:00Z" one second.
-- Values without a time zone are read as UTC.
CREATE FUNCTION fhir_date_range(v text) RETURNS tstzrange
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    lo timestamptz;
    width interval;
BEGIN
    IF v IS NULL THEN
        RETURN NULL;
    ELSIF v ~ '^\d{4}$' THEN
        lo := (v || '-01-01T00:00:00Z')::timestamptz; width := interval '1 year';
    ELSIF v ~ '^\d{4}-\d{2}$' THEN
        lo := (v || '-01T00:00:00Z')::timestamptz; width := interval '1 month';
    ELSIF v ~ '^\d{4}-\d{2}-\d{2}$' THEN
        lo := (v || 'T00:00:00Z')::timestamptz; width := interval '1 day';
    ELSIF v ~ '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})?$' THEN
        lo := (CASE WHEN v ~ '(Z|[+-]\d{2}:\d{2})$' THEN v ELSE v || 'Z' END)::timestamptz; width := interval '1 minute';
    ELSIF v ~ '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})?$' THEN
        lo := (CASE WHEN v ~ '(Z|[+-]\d{2}:\d{2})$' THEN v ELSE v || 'Z' END)::timestamptz; width := interval '1 second';
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

-- Range of a stored element that is either a date-like string or a Period object (open ends are unbounded).
CREATE FUNCTION fhir_value_range(v jsonb) RETURNS tstzrange
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE jsonb_typeof(v)
        WHEN 'string' THEN fhir_date_range(v #>> '{}')
        WHEN 'object' THEN tstzrange(lower(fhir_date_range(v ->> 'start')), upper(fhir_date_range(v ->> 'end')), '[)')
    END
$$;

-- Does a target range match the search value range `p` under a FHIR prefix (eq, ne, gt, lt, ge, le, sa, eb, ap)?
CREATE FUNCTION fhir_range_match(t tstzrange, prefix text, p tstzrange) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE prefix
        WHEN 'eq' THEN t <@ p
        WHEN 'ne' THEN NOT (t <@ p)
        WHEN 'gt' THEN upper_inf(t) OR upper(t) > upper(p)
        WHEN 'lt' THEN lower_inf(t) OR lower(t) < lower(p)
        WHEN 'ge' THEN upper_inf(t) OR upper(t) > upper(p) OR t <@ p
        WHEN 'le' THEN lower_inf(t) OR lower(t) < lower(p) OR t <@ p
        WHEN 'sa' THEN NOT lower_inf(t) AND lower(t) >= upper(p)
        WHEN 'eb' THEN NOT upper_inf(t) AND upper(t) <= lower(p)
        WHEN 'ap' THEN t && p
    END
$$;
