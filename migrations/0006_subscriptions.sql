-- Subscriptions (docs/subscriptions.md): an outbox of committed changes, the delivery state of every Subscription,
-- and the order in which changes are delivered.
--
-- Every write of a type some Subscription watches records one sub_change row in the writing transaction, with the
-- search columns of the version before and of the version after, so that criteria are evaluated on the change itself
-- (also a delete, and a status change that stops a resource matching) and never on a later state. Rows get their
-- delivery position (pos) from sub_sequence(), run by the server right after commits: positions follow commit order,
-- which the writers' own sequence (seq) does not, so a consumer that has handled everything up to a position never
-- finds a smaller one appearing later.

CREATE TABLE sub_change (
    seq            bigserial   PRIMARY KEY,
    pos            bigint      UNIQUE,   -- delivery order; NULL until sequenced
    res_type       text        NOT NULL,
    id             text        NOT NULL,
    version_id     integer     NOT NULL, -- the version the change made
    event          text        NOT NULL, -- create | update | delete
    changed_at     timestamptz NOT NULL DEFAULT now(),
    -- the new version's search columns (n_deleted: there is none, the change was a delete)
    n_deleted      boolean     NOT NULL,
    n_last_updated timestamptz,
    n_tokens       text[],
    n_text         text,
    n_date         tstzrange,
    n_sort         jsonb,
    n_geo          point,
    -- the previous version's (o_deleted: there was none, the change was a create)
    o_deleted      boolean     NOT NULL,
    o_last_updated timestamptz,
    o_tokens       text[],
    o_text         text,
    o_date         tstzrange,
    o_sort         jsonb,
    o_geo          point
);
CREATE INDEX sub_change_unsequenced ON sub_change (seq) WHERE pos IS NULL;
CREATE INDEX sub_change_changed ON sub_change (changed_at);

-- The last position handed out; one row, also the lock that serialises sequencing.
CREATE TABLE sub_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    pos      bigint  NOT NULL
);
INSERT INTO sub_head (pos) VALUES (0);

-- Delivery state of each stored Subscription, kept in step with the resource by sub_state_sync() below.
CREATE TABLE sub_state (
    id           text        PRIMARY KEY,
    version_id   integer     NOT NULL,
    res_type     text,                   -- the criteria's type
    criteria     text,
    status       text        NOT NULL,   -- requested | active | error | off
    channel_type text,
    endpoint     text,
    payload      text,
    headers      text[]      NOT NULL DEFAULT '{}', -- as stored (values sealed)
    end_at       timestamptz,
    cursor       bigint      NOT NULL,   -- every change up to this position has been handled
    failures     integer     NOT NULL DEFAULT 0, -- failed attempts in a row
    next_attempt timestamptz NOT NULL DEFAULT now(),
    last_error   text
);
CREATE INDEX sub_state_type ON sub_state (res_type) WHERE status <> 'off';

CREATE FUNCTION sub_state_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_doc      jsonb;
    v_head     bigint;
    v_criteria text;
    v_channel  jsonb;
    v_status   text;
    prev       sub_state%ROWTYPE;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.version_id = OLD.version_id THEN
        RETURN NULL;
    END IF;
    IF NEW.deleted THEN
        DELETE FROM sub_state WHERE id = NEW.id;
        PERFORM pg_notify('fhirsched_subs', NEW.id);
        RETURN NULL;
    END IF;
    v_doc := NEW.body::jsonb;
    v_criteria := v_doc ->> 'criteria';
    v_channel := coalesce(v_doc -> 'channel', '{}');
    v_status := coalesce(v_doc ->> 'status', 'off');
    SELECT pos INTO v_head FROM sub_head;
    SELECT * INTO prev FROM sub_state WHERE id = NEW.id FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO sub_state (id, version_id, res_type, criteria, status, channel_type, endpoint, payload, headers, end_at,
                               cursor)
        VALUES (NEW.id, NEW.version_id, nullif(split_part(v_criteria, '?', 1), ''), v_criteria, v_status,
                v_channel ->> 'type', v_channel ->> 'endpoint', v_channel ->> 'payload',
                ARRAY(SELECT jsonb_array_elements_text(coalesce(v_channel -> 'header', '[]'))),
                upper(fhir_date_range(v_doc ->> 'end')), v_head);
    ELSE
        UPDATE sub_state s
           SET version_id = NEW.version_id, res_type = nullif(split_part(v_criteria, '?', 1), ''), criteria = v_criteria,
               status = v_status, channel_type = v_channel ->> 'type', endpoint = v_channel ->> 'endpoint',
               payload = v_channel ->> 'payload',
               headers = ARRAY(SELECT jsonb_array_elements_text(coalesce(v_channel -> 'header', '[]'))),
               end_at = upper(fhir_date_range(v_doc ->> 'end')),
               -- switched off, changes are not kept for it: back on, it starts from now
               cursor = CASE WHEN prev.status = 'off' THEN v_head ELSE prev.cursor END,
               -- asked for again (or pointed elsewhere): a fresh start for the retries
               failures = CASE WHEN v_status = 'requested' OR prev.criteria IS DISTINCT FROM v_criteria
                                    OR prev.endpoint IS DISTINCT FROM v_channel ->> 'endpoint' THEN 0 ELSE prev.failures END,
               next_attempt = CASE WHEN v_status = 'requested' THEN now() ELSE prev.next_attempt END,
               last_error = CASE WHEN v_status = 'requested' THEN NULL ELSE prev.last_error END
         WHERE s.id = NEW.id;
    END IF;
    PERFORM pg_notify('fhirsched_subs', NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER sub_state_sync AFTER INSERT OR UPDATE ON subscription FOR EACH ROW EXECUTE FUNCTION sub_state_sync();

-- The outbox row of a write, when a Subscription that is not off watches the type.
CREATE FUNCTION sub_record_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    was boolean; -- a previous version exists
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.version_id = OLD.version_id THEN
        RETURN NULL; -- re-indexing or derived tokens, not a new version
    END IF;
    IF NOT EXISTS (SELECT 1 FROM sub_state s WHERE s.res_type = NEW.res_type AND s.status <> 'off') THEN
        RETURN NULL;
    END IF;
    was := TG_OP = 'UPDATE' AND NOT OLD.deleted;
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO sub_change (res_type, id, version_id, event,
                                n_deleted, n_last_updated, n_tokens, n_text, n_date, n_sort, n_geo,
                                o_deleted, o_last_updated, o_tokens, o_text, o_date, o_sort, o_geo)
        VALUES (NEW.res_type, NEW.id, NEW.version_id,
                CASE WHEN NEW.deleted THEN 'delete' WHEN was THEN 'update' ELSE 'create' END,
                NEW.deleted, NEW.last_updated, NEW.sp_tokens, NEW.sp_text, NEW.sp_date, NEW.sp_sort, NEW.sp_geo,
                NOT was, OLD.last_updated, OLD.sp_tokens, OLD.sp_text, OLD.sp_date, OLD.sp_sort, OLD.sp_geo);
    ELSE
        INSERT INTO sub_change (res_type, id, version_id, event,
                                n_deleted, n_last_updated, n_tokens, n_text, n_date, n_sort, n_geo, o_deleted)
        VALUES (NEW.res_type, NEW.id, NEW.version_id, 'create',
                NEW.deleted, NEW.last_updated, NEW.sp_tokens, NEW.sp_text, NEW.sp_date, NEW.sp_sort, NEW.sp_geo, true);
    END IF;
    PERFORM pg_notify('fhirsched_change', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER sub_record_change AFTER INSERT OR UPDATE ON resource FOR EACH ROW EXECUTE FUNCTION sub_record_change();

-- Gives the committed, unsequenced changes their positions (in the order the writers inserted them; a later version
-- of a resource is always inserted after the earlier one committed) and returns the new head. Run in its own
-- transaction; one at a time (the sub_head row lock).
CREATE FUNCTION sub_sequence() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    head bigint;
    n    integer;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM sub_change WHERE pos IS NULL) THEN
        RETURN (SELECT pos FROM sub_head);
    END IF;
    SELECT pos INTO head FROM sub_head FOR UPDATE;
    UPDATE sub_change c SET pos = head + x.rn
      FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS rn FROM sub_change WHERE pos IS NULL) x
     WHERE c.seq = x.seq;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        UPDATE sub_head SET pos = head + n;
        PERFORM pg_notify('fhirsched_head', (head + n)::text);
    END IF;
    RETURN head + n;
END
$$;

-- Forgets changes every rest-hook subscription has handled (after a grace period for websocket listeners, which
-- keep their place in memory), and every change older than the retention.
CREATE FUNCTION sub_prune(p_retention interval, p_grace interval) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    handled bigint;
    n       integer;
BEGIN
    SELECT min(cursor) INTO handled FROM sub_state WHERE channel_type = 'rest-hook' AND status <> 'off';
    DELETE FROM sub_change
     WHERE pos IS NOT NULL
       AND (changed_at < now() - p_retention
            OR (pos <= coalesce(handled, (SELECT pos FROM sub_head)) AND changed_at < now() - p_grace));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Subscriptions stored before this migration get their state.
INSERT INTO sub_state (id, version_id, res_type, criteria, status, channel_type, endpoint, payload, headers, end_at, cursor)
SELECT r.id, r.version_id, nullif(split_part(d ->> 'criteria', '?', 1), ''), d ->> 'criteria',
       -- stored before the server managed the status: the dispatcher checks them like new ones
       coalesce(d ->> 'status', 'off'),
       d -> 'channel' ->> 'type', d -> 'channel' ->> 'endpoint', d -> 'channel' ->> 'payload',
       ARRAY(SELECT jsonb_array_elements_text(coalesce(d -> 'channel' -> 'header', '[]'))),
       upper(fhir_date_range(d ->> 'end')), 0
  FROM resource r, LATERAL (SELECT r.body::jsonb AS d) x
 WHERE r.res_type = 'Subscription' AND NOT r.deleted;
