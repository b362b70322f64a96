-- Current version of every resource, one partition (table) per resource type, plus one shared history table.
-- The body column holds the JSON exactly as served (with meta.versionId/lastUpdated), so a read is one fetch
-- and no re-serialisation; doc is the same document as jsonb for searching.

CREATE TABLE resource (
    res_type     text        NOT NULL,
    id           text        NOT NULL,
    version_id   integer     NOT NULL,
    last_updated timestamptz NOT NULL,
    deleted      boolean     NOT NULL DEFAULT false,
    body         text,
    doc          jsonb GENERATED ALWAYS AS (body::jsonb) STORED,
    PRIMARY KEY (res_type, id)
) PARTITION BY LIST (res_type);

CREATE TABLE appointment          PARTITION OF resource FOR VALUES IN ('Appointment');
CREATE TABLE appointmentresponse  PARTITION OF resource FOR VALUES IN ('AppointmentResponse');
CREATE TABLE healthcareservice    PARTITION OF resource FOR VALUES IN ('HealthcareService');
CREATE TABLE location             PARTITION OF resource FOR VALUES IN ('Location');
CREATE TABLE patient              PARTITION OF resource FOR VALUES IN ('Patient');
CREATE TABLE practitioner         PARTITION OF resource FOR VALUES IN ('Practitioner');
CREATE TABLE practitionerrole     PARTITION OF resource FOR VALUES IN ('PractitionerRole');
CREATE TABLE schedule             PARTITION OF resource FOR VALUES IN ('Schedule');
CREATE TABLE slot                 PARTITION OF resource FOR VALUES IN ('Slot');
CREATE TABLE subscription         PARTITION OF resource FOR VALUES IN ('Subscription');

CREATE INDEX resource_last_updated ON resource (res_type, last_updated);
CREATE INDEX resource_doc ON resource USING gin (doc jsonb_path_ops);

CREATE TABLE resource_history (
    seq          bigserial   PRIMARY KEY,
    res_type     text        NOT NULL,
    id           text        NOT NULL,
    version_id   integer     NOT NULL,
    last_updated timestamptz NOT NULL,
    deleted      boolean     NOT NULL,
    method       text        NOT NULL,   -- the interaction that made the version: POST, PUT, PATCH or DELETE
    status       smallint    NOT NULL,   -- the HTTP status it was answered with
    body         text,
    UNIQUE (res_type, id, version_id)
);
CREATE INDEX resource_history_type_seq ON resource_history (res_type, seq);
CREATE INDEX resource_history_updated ON resource_history (last_updated);

-- FHIR instant text for a timestamp, in UTC with microseconds: the one formatting used in bodies and responses.
CREATE FUNCTION fhir_instant(ts timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- Every write goes through here, so that versioning, If-Match and history are decided in one place, inside the
-- database, under a row lock. The caller sends the serialised resource split around meta.versionId/lastUpdated:
-- body = p_head || <version> || '","lastUpdated":"' || <instant> || '"' || p_tail.
-- p_if_match: NULL or the version the client expects (412 otherwise).
-- p_mode: 'create' (new id, must not exist), 'update' (create or update), 'patch' (update of an existing resource),
--         'delete'. History records the interaction and the status it was answered with.
-- Outcome: 'created', 'updated', 'deleted', 'absent' (delete of nothing), 'unchanged' (delete of deleted).
-- Errors raise SQLSTATE FS412 (version conflict); FS409 (create on an existing id).
CREATE FUNCTION fhir_write(p_type text, p_id text, p_head text, p_tail text, p_if_match integer, p_mode text)
RETURNS TABLE (outcome text, version_id integer, last_updated text, body text)
LANGUAGE plpgsql AS $$
DECLARE
    cur_version integer;
    cur_deleted boolean;
    new_version integer;
    ts          timestamptz := clock_timestamp();
    new_body    text;
    method      text;
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
        UPDATE resource r SET version_id = new_version, last_updated = ts, deleted = true, body = NULL
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
    IF cur_version IS NULL THEN
        -- Two clients creating the same id at once: the loser gets a unique violation (23505), reported as 409.
        INSERT INTO resource (res_type, id, version_id, last_updated, deleted, body)
             VALUES (p_type, p_id, new_version, ts, false, new_body);
    ELSE
        UPDATE resource r SET version_id = new_version, last_updated = ts, deleted = false, body = new_body
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
