/*
 * libFuzzer target: a Subscription body on its way into the store (subs_check_subscription: criteria through the search
 * engine and the matcher, channel, endpoint allowlist, header syntax, sealed values) and the header lines delivery
 * would send. Input: the JSON body. Checks on the way: an accepted Subscription has a status the server manages, every
 * stored header is sealed or opens, and no header line handed to the HTTP client has a line break.
 */
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "subs/subs.h"

static int initialised;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!initialised) {
        util_config_t cfg;
        util_config_defaults(&cfg);
        cfg.subs_endpoint_allowlist = strdup("http://127.0.0.1:9/,https://hooks.example.org/fhir");
        char err[256];
        if (subs_init(&cfg, "fuzz-secret", err, sizeof(err)) != 0)
            abort();
        util_config_dispose(&cfg);
        initialised = 1;
    }
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return 0;
    }
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    if (subs_check_subscription(doc, NULL, &oo) == 0) {
        const char *status = json_string_value(json_object_get(doc, "status"));
        json_t *channel = json_object_get(doc, "channel");
        const char *type = json_string_value(json_object_get(channel, "type"));
        const char *endpoint = json_string_value(json_object_get(channel, "endpoint"));
        if (status != NULL && type != NULL && strcmp(type, "rest-hook") == 0 && strcmp(status, "active") == 0)
            abort(); /* a client cannot make a rest-hook active without a handshake */
        if (type != NULL && strcmp(type, "rest-hook") == 0) {
            size_t i;
            json_t *h;
            json_array_foreach(json_object_get(channel, "header"), i, h)
            {
                char *line = subs_header_line(endpoint, json_string_value(h));
                if (line == NULL || strchr(line, '\r') != NULL || strchr(line, '\n') != NULL)
                    abort();
                free(line);
            }
        }
    } else if (oo.status < 400 || oo.status > 499) {
        abort(); /* refusals are client errors */
    }
    fhir_outcome_dispose(&oo);
    json_decref(doc);
    return 0;
}
