/*
 * The scheduling module's public header. The pure foundation: time zones and civil dates (tz.h) and availability maths
 * (availability.h). Instants are Unix seconds in UTC; local wall times are seconds since 1970-01-01T00:00 on the local
 * calendar.
 */
#ifndef SCHED_SCHED_H
#define SCHED_SCHED_H

#include "sched/tz.h"
#include "sched/availability.h"

#endif
