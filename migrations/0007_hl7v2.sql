-- The HL7 v2 bridge: a record of every inbound message (which is also what makes a repeated MSH-10 return its first
-- ACK), the legacy endpoints outbound SIU goes to, and the outbound outbox, filled by a trigger in the transaction
-- that changed the Appointment so that nothing committed is ever missed.

-- Every inbound message, as received, with the ACK it was answered with. status: applied (AA), review (AE: kept for
-- someone to look at), rejected (AR: unparseable, unsupported type or version).
CREATE TABLE hl7_inbound (
    id                  bigserial   PRIMARY KEY,
    received_at         timestamptz NOT NULL DEFAULT now(),
    sending_application text        NOT NULL DEFAULT '',
    sending_facility    text        NOT NULL DEFAULT '',
    control_id          text        NOT NULL DEFAULT '',
    message_type        text        NOT NULL DEFAULT '',   -- "SIU^S12"
    status              text        NOT NULL CHECK (status IN ('applied', 'review', 'rejected')),
    ack_code            text        NOT NULL,
    ack                 text        NOT NULL,              -- the ACK as sent (ER7, without framing)
    error               text,
    warnings            text[]      NOT NULL DEFAULT '{}',
    resources           text[]      NOT NULL DEFAULT '{}', -- "Appointment/x/_history/2", ... written by the message
    message             text        NOT NULL,
    peer                text
);
-- A repeat of an applied or reviewed message is answered from here; rejected ones were never keyed reliably.
CREATE UNIQUE INDEX hl7_inbound_key ON hl7_inbound (sending_application, sending_facility, control_id)
    WHERE status <> 'rejected';
CREATE INDEX hl7_inbound_status ON hl7_inbound (status, received_at);
CREATE INDEX hl7_inbound_received ON hl7_inbound (received_at);

-- The legacy systems outbound SIU goes to, as configured (hl7.outbound): each server instance writes its
-- configuration here at start-up, so the trigger below knows whom to queue for.
CREATE TABLE hl7_endpoint (
    name                  text    PRIMARY KEY,
    receiving_application text    NOT NULL DEFAULT '',
    receiving_facility    text    NOT NULL DEFAULT '',
    events                text[]  NOT NULL,   -- of S12, S13, S14, S15, S17, S26
    enabled               boolean NOT NULL DEFAULT true
);

-- One row per message to one endpoint. The message text is rendered when it is first sent, from the Appointment
-- version that caused it; control_id is fixed from then on, so a retry is the same message.
CREATE TABLE hl7_outbox (
    id             bigserial   PRIMARY KEY,
    endpoint       text        NOT NULL,
    appointment_id text        NOT NULL,
    version_id     integer     NOT NULL,
    event          text        NOT NULL,
    state          text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'parked', 'discarded')),
    attempts       integer     NOT NULL DEFAULT 0,
    next_attempt   timestamptz NOT NULL DEFAULT now(),
    created_at     timestamptz NOT NULL DEFAULT now(),
    sent_at        timestamptz,
    control_id     text,
    message        text,
    ack            text,
    last_error     text
);
CREATE INDEX hl7_outbox_due ON hl7_outbox (endpoint, next_attempt) WHERE state = 'pending';
-- Order per appointment: a message waits while an earlier one to the same endpoint is pending or parked.
CREATE INDEX hl7_outbox_appointment ON hl7_outbox (endpoint, appointment_id, id) WHERE state IN ('pending', 'parked');
CREATE INDEX hl7_outbox_created ON hl7_outbox (created_at);

-- Statuses in which an Appointment is a booking the legacy side knows about.
CREATE FUNCTION hl7_booked_status(status text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(status IN ('booked', 'arrived', 'checked-in', 'fulfilled'), false)
$$;

-- The SIU trigger event for a change of an Appointment from `old_doc` (NULL: new) to `new_doc` (NULL: deleted), or
-- NULL when the change means nothing to a legacy scheduler (a hold, a proposal, a hold that expired).
CREATE FUNCTION hl7_siu_event(old_doc jsonb, new_doc jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN NOT hl7_booked_status(old_doc ->> 'status') THEN
            CASE WHEN hl7_booked_status(new_doc ->> 'status') THEN 'S12' END
        WHEN new_doc IS NULL THEN 'S17'
        WHEN new_doc ->> 'status' = 'cancelled' THEN 'S15'
        WHEN new_doc ->> 'status' = 'entered-in-error' THEN 'S17'
        WHEN new_doc ->> 'status' = 'noshow' THEN 'S26'
        WHEN NOT hl7_booked_status(new_doc ->> 'status') THEN NULL
        WHEN (old_doc ->> 'start') IS DISTINCT FROM (new_doc ->> 'start')
          OR (old_doc ->> 'end') IS DISTINCT FROM (new_doc ->> 'end') THEN 'S13'
        WHEN old_doc - 'meta' IS DISTINCT FROM new_doc - 'meta' THEN 'S14'
    END
$$;

-- Queues the SIU for every enabled endpoint that wants the event, except the system the change came from: an
-- inbound HL7 transaction names its sender in fhirsched.hl7_origin ("application|facility").
CREATE FUNCTION hl7_outbox_queue() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_doc jsonb;
    new_doc jsonb;
    ev      text;
    origin  text := coalesce(current_setting('fhirsched.hl7_origin', true), '');
    n       integer;
BEGIN
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

CREATE TRIGGER hl7_outbox_queue AFTER INSERT OR UPDATE OF body, deleted ON appointment
    FOR EACH ROW EXECUTE FUNCTION hl7_outbox_queue();
