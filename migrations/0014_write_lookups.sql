-- Writes without planning at every call (issue 8, docs/performance.md, "Planning at every call").
--
-- PL/pgSQL keeps a statement's plan for the session only when its generic plan does not look dearer than one made
-- for the values at hand; otherwise PostgreSQL plans it again at every execution. pg_stat_statements (track = all,
-- track_planning) counted two such statements on the write path, planned at every call:
--   fhir_write()'s row lookup: the partitioned `resource` table with the type as a parameter. A plan made for the
--     values prunes to one partition, the generic one counts every partition, so it was planned every time (about
--     80 us, a fifth of a Slot write while seeding).
--   sched_lock_busy()'s key list: generate_series() over variables is estimated at 1,000 rows in a generic plan and
--     exactly with the values, so it was planned every time (about 60 us of every Appointment write).

-- fhir_write() as in 0003_search_index.sql, without the row lookup in the common cases:
--   create (POST: a new id, no If-Match) inserts at once; an existing row, deleted or not, makes the insert do
--     nothing, reported as before (FS409). Two creates of one id at once: the second waits for the first and then
--     finds its row (FS409; the primary key's 23505 before, which the server answered with the same 409).
--   update, patch and delete read the current version from the history, which is one table (no plan per call):
--     every version is recorded there and only AuditEvent purges remove rows, both the resource's and its history's.
--     No history means no row: a PUT of a new id inserts at once (a concurrent create of that id makes it wait and
--     fail with 409, as before). Otherwise the update names the version it read; a concurrent writer
--     that moved the row on in between makes it update nothing, and then the row is read under its lock, as before,
--     and the write decided again (If-Match, delete of a deleted resource, ...).
-- The update itself is still planned at every call (the same partitioned-table estimate).
CREATE OR REPLACE FUNCTION fhir_write(p_type text, p_id text, p_head text, p_tail text, p_if_match integer, p_mode text,
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
    -- A create assumes a new id, the others read the history first (see above); then, if the row moved on meanwhile,
    -- it is read under its lock.
    FOR attempt IN 1 .. 2 LOOP
        IF attempt = 1 AND p_mode = 'create' AND p_if_match IS NULL THEN
            NULL; -- the insert below finds out when the id is taken
        ELSIF attempt = 1 THEN
            SELECT h.version_id, h.deleted INTO cur_version, cur_deleted
              FROM resource_history h WHERE h.res_type = p_type AND h.id = p_id ORDER BY h.version_id DESC LIMIT 1;
        ELSE
            SELECT r.version_id, r.deleted INTO cur_version, cur_deleted
              FROM resource r WHERE r.res_type = p_type AND r.id = p_id FOR UPDATE;
        END IF;

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
            -- A deleted resource matches no search: its index goes with its body. The version test makes a row that a
            -- concurrent writer moved on since the history was read update nothing; it is then read under its lock.
            UPDATE resource r SET version_id = new_version, last_updated = ts, deleted = true, body = NULL,
                   sp_tokens = '{}', sp_text = '', sp_date = NULL, sp_sort = '{}', sp_geo = NULL
             WHERE r.res_type = p_type AND r.id = p_id AND r.version_id = cur_version;
            CONTINUE WHEN NOT FOUND;
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
            -- The id is taken: by an existing row (a create) or by a write of it committed meanwhile (two clients
            -- creating the same id at once: the second waits for the first); 409 either way.
            INSERT INTO resource (res_type, id, version_id, last_updated, deleted, body,
                                  sp_version, sp_tokens, sp_text, sp_date, sp_sort, sp_geo)
                 VALUES (p_type, p_id, new_version, ts, false, new_body,
                         ix.v, ix.tokens, ix.txt, ix.during, ix.sortkeys, ix.geo)
            ON CONFLICT DO NOTHING;
            IF NOT FOUND THEN
                RAISE EXCEPTION USING ERRCODE = 'FS409', MESSAGE = format('%s/%s already exists', p_type, p_id);
            END IF;
        ELSE
            UPDATE resource r SET version_id = new_version, last_updated = ts, deleted = false, body = new_body,
                   sp_version = ix.v, sp_tokens = ix.tokens, sp_text = ix.txt, sp_date = ix.during,
                   sp_sort = ix.sortkeys, sp_geo = ix.geo
             WHERE r.res_type = p_type AND r.id = p_id AND r.version_id = cur_version;
            CONTINUE WHEN NOT FOUND;
        END IF;
        method := CASE p_mode WHEN 'create' THEN 'POST' WHEN 'patch' THEN 'PATCH' ELSE 'PUT' END;
        INSERT INTO resource_history (res_type, id, version_id, last_updated, deleted, method, status, body)
             VALUES (p_type, p_id, new_version, ts, false, method,
                     CASE WHEN cur_version IS NULL OR cur_deleted THEN 201 ELSE 200 END, new_body);
        RETURN QUERY SELECT CASE WHEN cur_version IS NULL OR cur_deleted THEN 'created' ELSE 'updated' END,
                            new_version, fhir_instant(ts), new_body;
        RETURN;
    END LOOP;
    -- Under the row's lock its version cannot move, so the second attempt always writes.
    RAISE EXCEPTION 'fhir_write: %/% changed while locked', p_type, p_id;
END
$$;

-- sched_lock_busy() as in 0013_busy_locks.sql, with the keys listed by loops instead of generate_series(): the same
-- keys, in the same order.
CREATE OR REPLACE FUNCTION sched_lock_busy(actors text[], span tstzrange) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    first_hour bigint;
    last_hour  bigint;
    keys       bigint[] := '{}';
    taken      integer := coalesce(nullif(current_setting('fhirsched.busy_locks', true), ''), '0')::integer;
    a          text;
    h          bigint;
    k          bigint;
BEGIN
    IF NOT lower_inf(span) AND NOT upper_inf(span) THEN
        first_hour := floor(extract(epoch FROM lower(span)) / 3600);
        last_hour := floor((extract(epoch FROM upper(span)) - 0.000001) / 3600);
    END IF;
    FOREACH a IN ARRAY actors LOOP
        IF first_hour IS NULL OR last_hour - first_hour >= 48 THEN
            keys := keys || hashtextextended(a, 0);
        ELSE
            h := first_hour; -- bigint all the way, as generate_series() was (an integer FOR loop is not)
            WHILE h <= last_hour LOOP
                keys := keys || hashtextextended(a || '@' || h, 0);
                h := h + 1;
            END LOOP;
        END IF;
    END LOOP;
    keys := ARRAY(SELECT DISTINCT x FROM unnest(keys) x ORDER BY 1);
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
