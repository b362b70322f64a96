/*
 * libFuzzer target: an inbound HL7 message through everything pure on its way in and out (hl7v2/map.c, ack.c,
 * render.c): parse, plan, the Appointment it would write, the ACK, and the SIU we would send for that Appointment.
 * Checks on the way: every ACK parses and names the message's control id, and every SIU we render parses back.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hl7v2/hl7.h"

static sched_tz_t *tz;

/* What we write must parse; an AR answers in the version and character set it was asked in, which may be ones we do not
 * read. */
static void must_parse(const char *text, bool any_version)
{
    hl7_parse_error_t perr;
    char why[256];
    hl7_msg_t *m = hl7_parse(text, strlen(text), &perr, why, sizeof(why));
    if (m == NULL && !(any_version && (perr == HL7_PARSE_VERSION || perr == HL7_PARSE_CHARSET)))
        abort();
    hl7_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (tz == NULL) {
        char err[128];
        tz = sched_tz_load("UTC", err, sizeof(err));
        if (tz == NULL)
            abort();
    }
    hl7_parse_error_t perr;
    char why[256];
    hl7_msg_t *msg = hl7_parse((const char *)data, size, &perr, why, sizeof(why));
    hl7_issue_t issue = {0};
    if (msg == NULL) {
        hl7_issue_set(&issue, (int)perr, "", "%s", why);
        char *ack = hl7_ack_build(NULL, (const char *)data, size, HL7_ACK_AR, &issue, 1, "FHIRSCHED", "FHIRSCHED", "FSA1");
        must_parse(ack, true);
        free(ack);
        return 0;
    }
    hl7_plan_t plan;
    hl7_map_ctx_t ctx = {tz};
    hl7_ack_code_t code = hl7_plan_build(&plan, msg, &ctx, &issue);
    if (code == HL7_ACK_AA && plan.kind == HL7_KIND_SIU) {
        char **refs = calloc(plan.nparties + 1, sizeof(*refs));
        for (size_t i = 0; i != plan.nparties; ++i)
            refs[i] = strcmp(plan.parties[i].type, "Location") == 0 ? "Location/l" : "Practitioner/p";
        json_t *a = hl7_appointment_apply(NULL, &plan, plan.has_patient ? "Patient/x" : NULL, refs, &issue);
        if (a != NULL) {
            json_object_set_new(a, "id", json_string("a1"));
            json_t *referenced = json_object();
            if (plan.has_patient)
                json_object_set(referenced, "Patient/x", plan.patient.resource);
            hl7_endpoint_t *eps;
            size_t n;
            char err[128];
            if (hl7_endpoints_parse("mllp://127.0.0.1:2576?version=2.3 mllp://127.0.0.1:2577", "FHIRSCHED", "CLINIC", &eps, &n, err,
                                    sizeof(err)) != 0)
                abort();
            for (size_t i = 0; i != n; ++i) {
                hl7_render_in_t in = {&eps[i], plan.event, "FS1", 1767225600, a, referenced};
                char *siu = hl7_render_siu(&in);
                must_parse(siu, false);
                free(siu);
            }
            hl7_endpoints_free(eps, n);
            json_decref(referenced);
            json_decref(a);
        }
        free(refs);
    }
    char *ack = hl7_ack_build(msg, NULL, 0, code, &issue, code == HL7_ACK_AA ? 0 : 1, "FHIRSCHED", "FHIRSCHED", "FSA1");
    hl7_msg_t *parsed = hl7_parse(ack, strlen(ack), &perr, why, sizeof(why));
    /* an ACK in a version or character set we do not read ourselves is still well formed; when it parses, MSA-2 must be
     * the message's control id */
    if (parsed != NULL) {
        long msa = hl7_find(parsed, "MSA", 0);
        const char *echoed = msa >= 0 ? hl7_raw_field(parsed, (size_t)msa, 2) : NULL, *sent = hl7_raw_field(msg, 0, 10);
        if (msa < 0 || (sent != NULL && (echoed == NULL || strcmp(echoed, sent) != 0)))
            abort();
        hl7_free(parsed);
    }
    free(ack);
    hl7_plan_dispose(&plan);
    hl7_free(msg);
    return 0;
}
