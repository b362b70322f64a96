-- Security (docs/security.md): AuditEvents, the access tokens that clinic roles are checked against, and the purge of
-- old AuditEvents.
--
-- Row-level access (src/fhir/access.h) matches rows by their search tokens, so a clinic user's rule is "sp_tokens
-- overlaps {_site=Location/a, _site=Location/b}" and an "own only" rule is "sp_tokens overlaps
-- {_owner=Practitioner/me}": one GIN lookup, also inside searches, includes, chains and _has. The tokens are derived
-- here, from the resource and the rows it links to, by a trigger on every write of the directory and scheduling types:
--   _site=Location/<id>        a clinic Location the resource belongs to (a Location belongs to itself and to every
--                              partOf ancestor)
--   _site=none                 it belongs to no clinic yet (so that "not assigned" can be matched too)
--   _owner=Practitioner/<id>   a practitioner whose schedule it is
-- C extraction never produces them (no search parameter has these names), and the trigger removes old ones first, so
-- they never pile up and `fhirsched migrate` re-extraction (fhir_reindex) keeps them.

CREATE TABLE auditevent PARTITION OF resource FOR VALUES IN ('AuditEvent');

-- The functions below are PL/pgSQL, so that their plans are made once per connection (SQL-language functions that
-- cannot be inlined are planned on every call: that alone made an Appointment write several times slower). They look
-- rows up one at a time by primary key, each query naming its resource type, so that a plan touches one partition
-- and its generic form is an index scan (with an array of ids, generic plans scanned whole tables).

-- The "Type/id" keys of the references a jsonpath selects in a resource (the path ends at `.reference`); lax mode
-- reads a single Reference and an array of them alike. Identifier-only and contained references give nothing.
CREATE FUNCTION sec_ref_keys(doc jsonb, path jsonpath) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN ARRAY(SELECT DISTINCT k FROM jsonb_path_query(doc, path) v, sched_ref_key(v #>> '{}') k WHERE k IS NOT NULL);
END
$$;

-- The tokens of `tokens` that start with `prefix`.
CREATE FUNCTION sec_pick(tokens text[], prefix text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN ARRAY(SELECT t FROM unnest(tokens) t WHERE starts_with(t, prefix));
END
$$;

-- The search tokens of the current row p_type/p_id (empty when it is missing or deleted), derived ones included:
-- what they were when it was last written. Reading them instead of recomputing keeps a write to a few lookups.
CREATE FUNCTION sec_row_tokens(p_type text, p_id text) RETURNS text[]
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    tokens text[];
BEGIN
    CASE p_type
    WHEN 'PractitionerRole' THEN
        SELECT r.sp_tokens INTO tokens FROM resource r WHERE r.res_type = 'PractitionerRole' AND r.id = p_id AND NOT r.deleted;
    WHEN 'HealthcareService' THEN
        SELECT r.sp_tokens INTO tokens FROM resource r WHERE r.res_type = 'HealthcareService' AND r.id = p_id AND NOT r.deleted;
    WHEN 'Practitioner' THEN
        SELECT r.sp_tokens INTO tokens FROM resource r WHERE r.res_type = 'Practitioner' AND r.id = p_id AND NOT r.deleted;
    WHEN 'Schedule' THEN
        SELECT r.sp_tokens INTO tokens FROM resource r WHERE r.res_type = 'Schedule' AND r.id = p_id AND NOT r.deleted;
    WHEN 'Slot' THEN
        SELECT r.sp_tokens INTO tokens FROM resource r WHERE r.res_type = 'Slot' AND r.id = p_id AND NOT r.deleted;
    WHEN 'Appointment' THEN
        SELECT r.sp_tokens INTO tokens FROM resource r WHERE r.res_type = 'Appointment' AND r.id = p_id AND NOT r.deleted;
    END CASE;
    RETURN coalesce(tokens, '{}');
END
$$;

-- The _site tokens that the rows `keys` of type p_type (other types are skipped) were given when last written.
CREATE FUNCTION sec_linked_sites(keys text[], p_type text) RETURNS text[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
    ref   text;
    sites text[] := '{}';
BEGIN
    FOREACH ref IN ARRAY keys LOOP
        IF starts_with(ref, p_type || '/') THEN
            sites := sites || sec_pick(sec_row_tokens(p_type, substr(ref, length(p_type) + 2)), '_site=Location/');
        END IF;
    END LOOP;
    RETURN sites;
END
$$;

-- Locations p_ids and their partOf ancestors as _site tokens, following at most 16 partOf steps through the current
-- Location rows (a deleted or missing row ends the walk; a cycle stops where it closes). With p_self, p_ids are the
-- parents of Location p_self being written (one step up already); its stored row is still the old version, so the
-- walk never goes through it.
CREATE FUNCTION sec_location_sites(p_ids text[], p_self text DEFAULT NULL) RETURNS text[]
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    seen  text[] := CASE WHEN p_self IS NULL THEN '{}' ELSE ARRAY[p_self] END;
    start text;
    cur   text;
    steps integer;
BEGIN
    FOREACH start IN ARRAY p_ids LOOP
        cur := start;
        steps := CASE WHEN p_self IS NULL THEN 0 ELSE 1 END;
        WHILE cur IS NOT NULL AND cur <> ALL (seen) LOOP
            seen := seen || cur;
            EXIT WHEN steps = 16;
            steps := steps + 1;
            SELECT split_part(k, '/', 2) INTO cur
              FROM (SELECT sched_ref_key(r.body::jsonb -> 'partOf' ->> 'reference') AS k
                      FROM resource r WHERE r.res_type = 'Location' AND r.id = cur AND NOT r.deleted) x
             WHERE k LIKE 'Location/%';
            IF NOT FOUND THEN
                cur := NULL;
            END IF;
        END LOOP;
    END LOOP;
    RETURN ARRAY(SELECT '_site=Location/' || i FROM unnest(seen) i WHERE i IS DISTINCT FROM p_self);
END
$$;

-- The sites of Practitioner p_id: those of their non-deleted PractitionerRoles, found through the GIN index on
-- sp_tokens (deleted rows keep no tokens). Planned for each value: a generic plan would scan the table.
CREATE FUNCTION sec_practitioner_sites(p_id text) RETURNS text[]
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN ARRAY(SELECT t FROM resource r, unnest(r.sp_tokens) t
                  WHERE r.res_type = 'PractitionerRole' AND NOT r.deleted
                    AND r.sp_tokens @> ARRAY['practitioner=Practitioner/' || p_id]
                    AND starts_with(t, '_site=Location/'));
END
$$;

-- The sites and owners that Schedule and Appointment actors give: Locations (with their ancestors),
-- PractitionerRoles (their sites and practitioner), HealthcareServices (their sites) and Practitioners (their roles'
-- sites, as kept on the Practitioner's row; themselves as owners). Other actors (Patients, Devices, ...) give nothing.
CREATE FUNCTION sec_actor_tokens(keys text[], OUT sites text[], OUT owners text[])
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
    sites := sites || sec_location_sites(locations);
END
$$;

-- The derived tokens of resource p_type/p_id with content doc (docs/security.md, "Clinic roles"), sorted.
-- Dependencies are read from the rows they depend on (a Slot from its Schedule, ...), which is why those rows are
-- recomputed when they change (the triggers below) and why the backfill runs in dependency order.
CREATE FUNCTION sec_derived_tokens(p_type text, p_id text, doc jsonb) RETURNS text[]
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
        FOREACH ref IN ARRAY sec_pick(sec_ref_keys(doc, '$.schedule.reference'), 'Schedule/') LOOP
            tokens := sec_row_tokens('Schedule', substr(ref, 10));
            sites := sites || sec_pick(tokens, '_site=Location/');
            owners := owners || sec_pick(tokens, '_owner=Practitioner/');
        END LOOP;
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

-- BEFORE INSERT OR UPDATE: replaces the derived tokens of the row being written (none for a deleted row). Runs on every
-- update, also the token-only ones below (`SET sp_tokens = sp_tokens`), which is how a row is recomputed without a
-- new version: body, version_id and last_updated stay as they are, and no history is written.
CREATE FUNCTION sec_access_tokens() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.sp_tokens := ARRAY(SELECT t FROM unnest(NEW.sp_tokens) WITH ORDINALITY AS u(t, n)
                            WHERE NOT starts_with(t, '_site=') AND NOT starts_with(t, '_owner=') ORDER BY n);
    IF NOT NEW.deleted AND NEW.body IS NOT NULL THEN
        NEW.sp_tokens := NEW.sp_tokens || sec_derived_tokens(NEW.res_type, NEW.id, NEW.body::jsonb);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER sec_access_tokens BEFORE INSERT OR UPDATE ON location FOR EACH ROW EXECUTE FUNCTION sec_access_tokens();
CREATE TRIGGER sec_access_tokens BEFORE INSERT OR UPDATE ON practitionerrole FOR EACH ROW EXECUTE FUNCTION sec_access_tokens();
CREATE TRIGGER sec_access_tokens BEFORE INSERT OR UPDATE ON healthcareservice FOR EACH ROW EXECUTE FUNCTION sec_access_tokens();
CREATE TRIGGER sec_access_tokens BEFORE INSERT OR UPDATE ON practitioner FOR EACH ROW EXECUTE FUNCTION sec_access_tokens();
CREATE TRIGGER sec_access_tokens BEFORE INSERT OR UPDATE ON device FOR EACH ROW EXECUTE FUNCTION sec_access_tokens();
CREATE TRIGGER sec_access_tokens BEFORE INSERT OR UPDATE ON schedule FOR EACH ROW EXECUTE FUNCTION sec_access_tokens();
CREATE TRIGGER sec_access_tokens BEFORE INSERT OR UPDATE ON slot FOR EACH ROW EXECUTE FUNCTION sec_access_tokens();
CREATE TRIGGER sec_access_tokens BEFORE INSERT OR UPDATE ON appointment FOR EACH ROW EXECUTE FUNCTION sec_access_tokens();
CREATE TRIGGER sec_access_tokens BEFORE INSERT OR UPDATE ON appointmentresponse FOR EACH ROW EXECUTE FUNCTION sec_access_tokens();

-- Recomputes the derived tokens of every row, each type after the ones it reads from, with token-only updates:
-- sched_appointment_sync (AFTER UPDATE OF body, deleted) does not fire, and no version is made. Run here for the rows
-- written before this migration; run it again after a re-extraction that started from empty search tokens (a
-- database older than migration 0003), because a Practitioner's sites are found through its roles' search tokens and
-- fhir_reindex goes through the rows in (res_type, id) order.
CREATE FUNCTION sec_backfill() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE location SET sp_tokens = sp_tokens WHERE NOT deleted;
    UPDATE practitionerrole SET sp_tokens = sp_tokens WHERE NOT deleted;
    UPDATE healthcareservice SET sp_tokens = sp_tokens WHERE NOT deleted;
    UPDATE practitioner SET sp_tokens = sp_tokens WHERE NOT deleted;
    UPDATE device SET sp_tokens = sp_tokens WHERE NOT deleted;
    UPDATE schedule SET sp_tokens = sp_tokens WHERE NOT deleted;
    UPDATE slot SET sp_tokens = sp_tokens WHERE NOT deleted;
    UPDATE appointment SET sp_tokens = sp_tokens WHERE NOT deleted;
    UPDATE appointmentresponse SET sp_tokens = sp_tokens WHERE NOT deleted;
END
$$;

-- Before the dependents' triggers exist: the backfill visits every Practitioner and Slot once anyway.
SELECT sec_backfill();

-- The derived tokens of a row, sorted: what the dependents' triggers compare to see whether anything changed.
CREATE FUNCTION sec_derived_of(tokens text[]) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN ARRAY(SELECT t FROM unnest(tokens) t WHERE starts_with(t, '_site=') OR starts_with(t, '_owner=') ORDER BY t);
END
$$;

-- Two dependencies are kept in step: a PractitionerRole's Practitioner (the old and the new one) and a Schedule's
-- Slots. Nothing deeper is propagated: every other row keeps what it read from the rows it links to until it is
-- written again (or sec_backfill() runs). So a Location whose partOf moves leaves the Locations below it, and the
-- roles, services, devices, schedules, slots and appointments linked to them, with their old sites; Schedules and
-- Appointments keep their sites when a participant's roles change (also through the Practitioner's propagated row),
-- Appointments when their Slots' Schedule changes, AppointmentResponses when their Appointment changes. Writes that
-- change nothing derived (most of them) skip the dependents entirely.
CREATE FUNCTION sec_practitionerrole_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    before text[] := CASE WHEN TG_OP = 'UPDATE' THEN sec_derived_of(OLD.sp_tokens) ELSE '{}' END;
    after  text[] := sec_derived_of(NEW.sp_tokens);
BEGIN
    IF before = after THEN
        RETURN NULL;
    END IF;
    -- Token-only: the Practitioner's BEFORE trigger recomputes it; no version, no history, no other trigger.
    UPDATE resource r SET sp_tokens = r.sp_tokens
     WHERE r.res_type = 'Practitioner' AND NOT r.deleted
       AND r.id = ANY (ARRAY(SELECT substr(t, length('_owner=Practitioner/') + 1) FROM unnest(before || after) t
                              WHERE starts_with(t, '_owner=Practitioner/')));
    RETURN NULL;
END
$$;

-- Also on INSERT: a Schedule created after its Slots (a transaction Bundle, a load) gives them their tokens.
CREATE FUNCTION sec_schedule_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND sec_derived_of(OLD.sp_tokens) = sec_derived_of(NEW.sp_tokens) THEN
        RETURN NULL;
    END IF;
    UPDATE resource r SET sp_tokens = r.sp_tokens
     WHERE r.res_type = 'Slot' AND r.sp_tokens @> ARRAY['schedule=Schedule/' || NEW.id];
    RETURN NULL;
END
$$;

CREATE TRIGGER sec_practitionerrole_changed AFTER INSERT OR UPDATE ON practitionerrole
    FOR EACH ROW EXECUTE FUNCTION sec_practitionerrole_changed();
CREATE TRIGGER sec_schedule_changed AFTER INSERT OR UPDATE ON schedule
    FOR EACH ROW EXECUTE FUNCTION sec_schedule_changed();

-- The sweeper's retention (audit.retention_days): deletes up to p_limit AuditEvents recorded before p_before, with
-- their history, and returns how many. "Recorded before" is the whole `recorded` range (sp_date, at its precision)
-- ending by p_before; an event without a readable `recorded` (or deleted) goes by last_updated. Planned for each call,
-- so that the GiST index on sp_date finds the few old rows among many (a generic plan scans the table). SKIP LOCKED
-- lets the sweepers of several server instances run at once; call again while it returns p_limit.
CREATE FUNCTION audit_purge(p_before timestamptz, p_limit integer) RETURNS integer
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    n integer;
BEGIN
    WITH victims AS (
        SELECT r.id FROM resource r
         WHERE r.res_type = 'AuditEvent'
           AND (r.sp_date << tstzrange(p_before, NULL) OR (r.sp_date IS NULL AND r.last_updated < p_before))
         LIMIT greatest(p_limit, 0)
           FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM resource r USING victims v WHERE r.res_type = 'AuditEvent' AND r.id = v.id RETURNING r.id
    ), history AS (
        DELETE FROM resource_history h USING gone g WHERE h.res_type = 'AuditEvent' AND h.id = g.id
    )
    SELECT count(*) INTO n FROM gone;
    RETURN n;
END
$$;
