-- Typed search columns on the resource table, replacing SQL/JSON path searches over a generated jsonb column.
-- fhirsched extracts them in C from the search parameter registry (src/fhir/search_registry.c) on every write and
-- hands them to fhir_write() as one jsonb document; `fhirsched migrate` re-extracts rows whose sp_version is older
-- than the registry's (so this migration leaves existing rows at version 0 for it to fill).
--   sp_tokens  "code=value" entries of token parameters, "code=Type/id" and "code=id" of references, plus the
--              bare "code" of every parameter that has a value (for :missing)
--   sp_text    "\x1ecode=folded value\x1ecode:exact=Value\x1e..." of string parameters and :text: one trigram index
--              answers starts-with, contains and exact
--   sp_date    the range of the type's date parameter (the registry allows one per type)
--   sp_sort    {"code": sort key} of every parameter, for _sort
--   sp_geo     Location.position as (longitude, latitude), for near

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- A secret shared by every server instance on this database: it authenticates what the server hands to clients and
-- takes back (search paging cursors), so that any instance can verify what another issued.
CREATE TABLE server_secret (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    secret   text    NOT NULL
);
INSERT INTO server_secret (secret) VALUES (replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));

ALTER TABLE resource
    ADD COLUMN sp_version smallint NOT NULL DEFAULT 0,
    ADD COLUMN sp_tokens  text[]   NOT NULL DEFAULT '{}',
    ADD COLUMN sp_text    text     NOT NULL DEFAULT '',
    ADD COLUMN sp_date    tstzrange,
    ADD COLUMN sp_sort    jsonb    NOT NULL DEFAULT '{}',
    ADD COLUMN sp_geo     point;

DROP INDEX resource_doc;
ALTER TABLE resource DROP COLUMN doc;

CREATE INDEX resource_sp_tokens ON resource USING gin (sp_tokens);
CREATE INDEX resource_sp_text ON resource USING gin (sp_text gin_trgm_ops);
CREATE INDEX resource_sp_date ON resource USING gist (sp_date);

-- The range from the start of one date value to the end of another (a NULL side is unbounded); never fails, so a
-- Period that ends before it starts (or an unreadable value) cannot make a write fail.
CREATE FUNCTION fhir_period_range(lo_text text, hi_text text) RETURNS tstzrange
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    lo timestamptz := lower(fhir_date_range(lo_text));
    hi timestamptz := upper(fhir_date_range(hi_text));
BEGIN
    IF lo IS NOT NULL AND hi IS NOT NULL AND lo > hi THEN
        RETURN tstzrange(hi, lo, '[)');
    END IF;
    RETURN tstzrange(lo, hi, '[)');
END
$$;

-- The columns of an extracted index document ({"v":version,"t":[...],"s":"...","d":["lo","hi"],"o":{...},
-- "g":[lat,lon]}), computed once so that fhir_write() can store a row in one INSERT/UPDATE.
CREATE FUNCTION fhir_index_row(p_index jsonb, OUT v smallint, OUT tokens text[], OUT txt text, OUT during tstzrange,
                               OUT sortkeys jsonb, OUT geo point)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (p_index ->> 'v')::smallint,
           ARRAY(SELECT jsonb_array_elements_text(coalesce(p_index -> 't', '[]'))),
           coalesce(p_index ->> 's', ''),
           CASE WHEN p_index ? 'd' THEN fhir_period_range(p_index -> 'd' ->> 0, p_index -> 'd' ->> 1) END,
           coalesce(p_index -> 'o', '{}'),
           CASE WHEN p_index ? 'g' THEN point((p_index -> 'g' ->> 1)::float8, (p_index -> 'g' ->> 0)::float8) END
$$;

-- Re-extraction by `fhirsched migrate`: stores the index documents of a batch of rows (parallel arrays).
CREATE FUNCTION fhir_reindex(p_types text[], p_ids text[], p_indexes jsonb[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    UPDATE resource r SET sp_version = x.v, sp_tokens = x.tokens, sp_text = x.txt, sp_date = x.during,
                          sp_sort = x.sortkeys, sp_geo = x.geo
      FROM (SELECT u.t, u.i, f.* FROM unnest(p_types, p_ids, p_indexes) AS u(t, i, d), LATERAL fhir_index_row(u.d) AS f) AS x
     WHERE r.res_type = x.t AND r.id = x.i;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Great-circle distance in kilometres between a stored (longitude, latitude) point and a latitude/longitude.
CREATE FUNCTION fhir_distance_km(p point, lat float8, lon float8) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 2 * 6371.0088 * asin(sqrt(
        power(sin(radians(lat - p[1]) / 2), 2) +
        cos(radians(p[1])) * cos(radians(lat)) * power(sin(radians(lon - p[0]) / 2), 2)))
$$;

-- The `ap` prefix: the search value's range widened by 10% of its distance from now (FHIR R4 search, "ap").
CREATE FUNCTION fhir_approx_range(p tstzrange) RETURNS tstzrange
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT tstzrange(lower(p) - abs(extract(epoch FROM lower(p) - now())) * 0.1 * interval '1 second',
                     upper(p) + abs(extract(epoch FROM upper(p) - now())) * 0.1 * interval '1 second', '[)')
$$;

-- The window [lo, hi) that a date search bounded below and above must overlap; unbounded when the bounds cross (a
-- long period can still match both). Added as a redundant condition so that the planner sees one narrow range
-- instead of two independent half-lines, whose product it would overestimate.
CREATE FUNCTION fhir_window(lo timestamptz, hi timestamptz) RETURNS tstzrange
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN lo < hi THEN tstzrange(lo, hi, '[)') ELSE tstzrange(NULL, NULL) END
$$;

-- Old signature (no index document) is replaced: every writer now hands over the extracted search index.
DROP FUNCTION fhir_write(text, text, text, text, integer, text);
DROP FUNCTION fhir_range_match(tstzrange, text, tstzrange);
DROP FUNCTION fhir_value_range(jsonb);

CREATE FUNCTION fhir_write(p_type text, p_id text, p_head text, p_tail text, p_if_match integer, p_mode text,
                           p_index jsonb)
RETURNS TABLE (outcome text, version_id integer, last_updated text, body text)
LANGUAGE plpgsql AS $$
DECLARE
    cur_version integer;
    cur_deleted boolean;
    new_version integer;
    ts          timestamptz := clock_timestamp();
    new_body    text;
    method      text;
    ix          record;
BEGIN
    SELECT r.version_id, r.deleted INTO cur_version, cur_deleted
      FROM resource r WHERE r.res_type = p_type AND r.id = p_id FOR UPDATE;

    IF p_if_match IS NOT NULL AND (cur_version IS NULL OR cur_version <> p_if_match) THEN
        RAISE EXCEPTION USING ERRCODE = 'FS412',
            MESSAGE = format('version conflict: %s/%s is at version %s, not %s', p_type, p_id,
                             coalesce(cur_version::text, 'none'), p_if_match);
    END IF;

    IF p_mode = 'delete' THEN
        IF cur_version IS NULL THEN
            RETURN QUERY SELECT 'absent'::text, NULL::integer, NULL::text, NULL::text;
            RETURN;
        END IF;
        IF cur_deleted THEN
            RETURN QUERY SELECT 'unchanged'::text, cur_version, NULL::text, NULL::text;
            RETURN;
        END IF;
        new_version := cur_version + 1;
        -- A deleted resource matches no search: its index goes with its body.
        UPDATE resource r SET version_id = new_version, last_updated = ts, deleted = true, body = NULL,
               sp_tokens = '{}', sp_text = '', sp_date = NULL, sp_sort = '{}', sp_geo = NULL
         WHERE r.res_type = p_type AND r.id = p_id;
        INSERT INTO resource_history (res_type, id, version_id, last_updated, deleted, method, status, body)
             VALUES (p_type, p_id, new_version, ts, true, 'DELETE', 200, NULL);
        RETURN QUERY SELECT 'deleted'::text, new_version, fhir_instant(ts), NULL::text;
        RETURN;
    END IF;

    IF cur_version IS NOT NULL AND p_mode = 'create' THEN
        RAISE EXCEPTION USING ERRCODE = 'FS409', MESSAGE = format('%s/%s already exists', p_type, p_id);
    END IF;

    new_version := coalesce(cur_version, 0) + 1;
    new_body := p_head || new_version::text || '","lastUpdated":"' || fhir_instant(ts) || '"' || p_tail;
    SELECT * INTO ix FROM fhir_index_row(p_index);
    IF cur_version IS NULL THEN
        -- Two clients creating the same id at once: the loser gets a unique violation (23505), reported as 409.
        INSERT INTO resource (res_type, id, version_id, last_updated, deleted, body,
                              sp_version, sp_tokens, sp_text, sp_date, sp_sort, sp_geo)
             VALUES (p_type, p_id, new_version, ts, false, new_body,
                     ix.v, ix.tokens, ix.txt, ix.during, ix.sortkeys, ix.geo);
    ELSE
        UPDATE resource r SET version_id = new_version, last_updated = ts, deleted = false, body = new_body,
               sp_version = ix.v, sp_tokens = ix.tokens, sp_text = ix.txt, sp_date = ix.during,
               sp_sort = ix.sortkeys, sp_geo = ix.geo
         WHERE r.res_type = p_type AND r.id = p_id;
    END IF;
    method := CASE p_mode WHEN 'create' THEN 'POST' WHEN 'patch' THEN 'PATCH' ELSE 'PUT' END;
    INSERT INTO resource_history (res_type, id, version_id, last_updated, deleted, method, status, body)
         VALUES (p_type, p_id, new_version, ts, false, method,
                 CASE WHEN cur_version IS NULL OR cur_deleted THEN 201 ELSE 200 END, new_body);
    RETURN QUERY SELECT CASE WHEN cur_version IS NULL OR cur_deleted THEN 'created' ELSE 'updated' END,
                        new_version, fhir_instant(ts), new_body;
END
$$;
