/* Sockets shared by the listeners (HTTP, MLLP). */
#ifndef UTIL_NET_H
#define UTIL_NET_H

#include <stddef.h>

/**
 * Binds a non-blocking listening socket on host:port with SO_REUSEPORT, so that every loop thread gets its own and the
 * kernel spreads connections. Returns the fd, or -1 with a message starting with `setting` ("listen", "hl7.listen").
 */
int util_net_listen(const char *host, unsigned short port, const char *setting, char *err, size_t errlen);

#endif
