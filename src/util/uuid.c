#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include "util/uuid.h"

void util_uuid_v4(char *out)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1) {
        /* The CSPRNG failing is not something a request can recover from. */
        fputs("fhirsched: RAND_bytes failed\n", stderr);
        abort();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    snprintf(out, UTIL_UUID_LEN + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3],
             b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}
