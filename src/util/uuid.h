/* Random (version 4) UUIDs for server-assigned ids and request ids. */
#ifndef UTIL_UUID_H
#define UTIL_UUID_H

/** Length of the textual form without the terminating NUL. */
#define UTIL_UUID_LEN 36

/** Writes a random UUID (lowercase, NUL-terminated) into `out` (UTIL_UUID_LEN + 1 bytes). */
void util_uuid_v4(char *out);

#endif
