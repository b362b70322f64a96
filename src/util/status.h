/* HTTP reason phrases, shared by the HTTP layer and Bundle entry responses ("201 Created"). */
#ifndef UTIL_STATUS_H
#define UTIL_STATUS_H

/** The reason phrase for an HTTP status ("Not Found"); "Unknown" for codes we never send. */
const char *util_http_reason(int status);

#endif
