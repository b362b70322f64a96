#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include "util/uuid.h"

/* Random bytes are drawn from the CSPRNG in blocks: one RAND_bytes call costs about as much as a search's SQL. */
#define RANDOM_BLOCK 512

static void random_bytes(unsigned char *out, size_t n)
{
    static _Thread_local unsigned char block[RANDOM_BLOCK];
    static _Thread_local size_t used = RANDOM_BLOCK;
    if (used + n > RANDOM_BLOCK) {
        if (RAND_bytes(block, sizeof(block)) != 1) {
            /* The CSPRNG failing is not something a request can recover from. */
            fputs("fhirsched: RAND_bytes failed\n", stderr);
            abort();
        }
        used = 0;
    }
    for (size_t i = 0; i != n; ++i) {
        out[i] = block[used + i];
        block[used + i] = 0; /* handed out once */
    }
    used += n;
}

void util_uuid_v4(char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    random_bytes(b, sizeof(b));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    char *p = out;
    for (int i = 0; i != 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 0x0f];
    }
    *p = '\0';
}
