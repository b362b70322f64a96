/*
 * Interval sets and the rules-to-intervals expansion. Every set operation builds its result in a fresh set and then moves
 * it into the output, so outputs may alias inputs. Values are kept inside [SCHED_TIME_MIN, SCHED_TIME_MAX], which leaves
 * ample headroom for the additions below (durations and buffers are capped).
 */
#include <stdlib.h>
#include <string.h>
#include "sched/availability.h"
#include "util/str.h"

#define SECS_PER_DAY 86400

void sched_avail_set_init(sched_avail_set_t *set)
{
    *set = (sched_avail_set_t){NULL, 0, 0};
}

void sched_avail_set_dispose(sched_avail_set_t *set)
{
    free(set->items);
    sched_avail_set_init(set);
}

void sched_avail_set_clear(sched_avail_set_t *set)
{
    set->count = 0;
}

static void reserve(sched_avail_set_t *set, size_t extra)
{
    if (set->count + extra <= set->_capacity)
        return;
    size_t cap = set->_capacity < 8 ? 8 : set->_capacity;
    while (cap < set->count + extra)
        cap *= 2;
    set->items = util_xrealloc(set->items, cap * sizeof(*set->items));
    set->_capacity = cap;
}

/* Appends an interval that starts no earlier than the last one, merging when they overlap or touch. */
static void push(sched_avail_set_t *set, int64_t start, int64_t end)
{
    if (start >= end)
        return;
    if (set->count != 0 && start <= set->items[set->count - 1].end) {
        if (end > set->items[set->count - 1].end)
            set->items[set->count - 1].end = end;
        return;
    }
    reserve(set, 1);
    set->items[set->count++] = (sched_interval_t){start, end};
}

static void move_into(sched_avail_set_t *out, sched_avail_set_t *tmp)
{
    free(out->items);
    *out = *tmp;
}

static int64_t clamp_time(int64_t t)
{
    return t < SCHED_TIME_MIN ? SCHED_TIME_MIN : t > SCHED_TIME_MAX ? SCHED_TIME_MAX : t;
}

static int cmp_start(const void *x, const void *y)
{
    const sched_interval_t *a = x, *b = y;
    return a->start < b->start ? -1 : a->start > b->start;
}

/* Sorts and merges raw intervals into `out`. */
static void normalize(sched_avail_set_t *out, sched_interval_t *raw, size_t n)
{
    sched_avail_set_t tmp;
    sched_avail_set_init(&tmp);
    if (n > 1)
        qsort(raw, n, sizeof(*raw), cmp_start);
    reserve(&tmp, n);
    for (size_t i = 0; i != n; ++i)
        push(&tmp, raw[i].start, raw[i].end);
    move_into(out, &tmp);
}

void sched_avail_set_copy(sched_avail_set_t *dst, const sched_avail_set_t *src)
{
    if (dst == src)
        return;
    dst->count = 0;
    reserve(dst, src->count);
    if (src->count != 0)
        memcpy(dst->items, src->items, src->count * sizeof(*src->items));
    dst->count = src->count;
}

int sched_avail_set_add(sched_avail_set_t *set, int64_t start, int64_t end)
{
    if (start > end)
        return -1;
    start = clamp_time(start);
    end = clamp_time(end);
    if (start == end)
        return 0;
    /* First interval that overlaps or touches [start, end), then every further one it swallows. */
    size_t lo = 0, hi = set->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set->items[mid].end < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t k = lo;
    while (k < set->count && set->items[k].start <= end) {
        if (set->items[k].start < start)
            start = set->items[k].start;
        if (set->items[k].end > end)
            end = set->items[k].end;
        ++k;
    }
    if (k == lo) {
        reserve(set, 1);
        memmove(set->items + lo + 1, set->items + lo, (set->count - lo) * sizeof(*set->items));
        ++set->count;
    } else if (k > lo + 1) {
        memmove(set->items + lo + 1, set->items + k, (set->count - k) * sizeof(*set->items));
        set->count -= k - lo - 1;
    }
    set->items[lo] = (sched_interval_t){start, end};
    return 0;
}

void sched_avail_set_union(sched_avail_set_t *out, const sched_avail_set_t *a, const sched_avail_set_t *b)
{
    sched_avail_set_t tmp;
    sched_avail_set_init(&tmp);
    reserve(&tmp, a->count + b->count);
    size_t i = 0, j = 0;
    while (i < a->count || j < b->count) {
        const sched_interval_t *next;
        if (j == b->count || (i < a->count && a->items[i].start <= b->items[j].start))
            next = &a->items[i++];
        else
            next = &b->items[j++];
        push(&tmp, next->start, next->end);
    }
    move_into(out, &tmp);
}

void sched_avail_set_intersect(sched_avail_set_t *out, const sched_avail_set_t *a, const sched_avail_set_t *b)
{
    sched_avail_set_t tmp;
    sched_avail_set_init(&tmp);
    size_t i = 0, j = 0;
    while (i < a->count && j < b->count) {
        int64_t s = a->items[i].start > b->items[j].start ? a->items[i].start : b->items[j].start;
        int64_t e = a->items[i].end < b->items[j].end ? a->items[i].end : b->items[j].end;
        push(&tmp, s, e);
        if (a->items[i].end < b->items[j].end)
            ++i;
        else
            ++j;
    }
    move_into(out, &tmp);
}

void sched_avail_set_subtract(sched_avail_set_t *out, const sched_avail_set_t *a, const sched_avail_set_t *b)
{
    sched_avail_set_t tmp;
    sched_avail_set_init(&tmp);
    size_t j = 0;
    for (size_t i = 0; i != a->count; ++i) {
        int64_t cur = a->items[i].start, end = a->items[i].end;
        /* b's intervals ending before this one starts cannot touch any later one either. */
        while (j < b->count && b->items[j].end <= cur)
            ++j;
        for (size_t k = j; k < b->count && b->items[k].start < end && cur < end; ++k) {
            push(&tmp, cur, b->items[k].start);
            if (b->items[k].end > cur)
                cur = b->items[k].end;
        }
        push(&tmp, cur, end);
    }
    move_into(out, &tmp);
}

void sched_avail_set_clip(sched_avail_set_t *set, int64_t start, int64_t end)
{
    sched_avail_set_t window = {&(sched_interval_t){start, end}, start < end ? 1 : 0, 1};
    sched_avail_set_intersect(set, set, &window);
}

bool sched_avail_set_contains(const sched_avail_set_t *set, int64_t start, int64_t end)
{
    if (start >= end)
        return false;
    /* The only candidate is the last interval starting at or before `start`. */
    size_t lo = 0, hi = set->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set->items[mid].start <= start)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && set->items[lo - 1].end >= end;
}

int64_t sched_avail_set_total(const sched_avail_set_t *set)
{
    int64_t total = 0;
    for (size_t i = 0; i != set->count; ++i)
        total += set->items[i].end - set->items[i].start;
    return total;
}

int sched_avail_set_intersect_all(sched_avail_set_t *out, const sched_avail_set_t *const *sets, size_t n)
{
    if (n == 0) {
        sched_avail_set_clear(out);
        return -1;
    }
    sched_avail_set_t tmp;
    sched_avail_set_init(&tmp);
    sched_avail_set_copy(&tmp, sets[0]);
    for (size_t i = 1; i < n && tmp.count != 0; ++i)
        sched_avail_set_intersect(&tmp, &tmp, sets[i]);
    move_into(out, &tmp);
    return 0;
}

int sched_avail_set_subtract_busy(sched_avail_set_t *set, const sched_interval_t *busy, size_t n, int64_t extend_before,
                                  int64_t extend_after)
{
    if (extend_before < 0 || extend_before > SCHED_AVAIL_MAX_BUFFER || extend_after < 0 || extend_after > SCHED_AVAIL_MAX_BUFFER)
        return -1;
    sched_interval_t *raw = util_xmalloc((n == 0 ? 1 : n) * sizeof(*raw));
    size_t m = 0;
    for (size_t i = 0; i != n; ++i) {
        if (busy[i].end <= busy[i].start)
            continue;
        /* Clamp first so that widening cannot overflow. */
        raw[m++] = (sched_interval_t){clamp_time(busy[i].start) - extend_before, clamp_time(busy[i].end) + extend_after};
    }
    sched_avail_set_t cut;
    sched_avail_set_init(&cut);
    normalize(&cut, raw, m);
    free(raw);
    sched_avail_set_subtract(set, set, &cut);
    sched_avail_set_dispose(&cut);
    return 0;
}

static bool rule_is_valid(const sched_avail_rule_t *r)
{
    if ((r->days & ~SCHED_DAY_ALL) != 0)
        return false;
    return r->all_day || (r->start >= 0 && r->start < SECS_PER_DAY && r->end >= 0 && r->end <= SECS_PER_DAY);
}

/* The instant a period bound in local wall time stands for: a time in a DST gap becomes the end of the gap, so the
 * period covers exactly the instants whose wall time lies inside it; an ambiguous one takes the earlier reading. */
static int bound_to_utc(const sched_tz_t *tz, int64_t local, int64_t *utc)
{
    sched_tz_local_t r;
    if (sched_tz_local_resolve(tz, local, &r) != 0)
        return -1;
    *utc = r.earlier;
    return 0;
}

int sched_avail_rules_expand(sched_avail_set_t *out, const sched_avail_rule_t *rules, size_t n, const sched_tz_t *tz, int64_t from,
                             int64_t to)
{
    sched_avail_set_clear(out);
    if (from > to || from < SCHED_TIME_MIN || to > SCHED_TIME_MAX || to - from > (int64_t)SCHED_AVAIL_MAX_DAYS * SECS_PER_DAY)
        return -1;
    for (size_t i = 0; i != n; ++i)
        if (!rule_is_valid(&rules[i]))
            return -1;
    if (from == to || n == 0)
        return 0;

    /* Start a day early for periods that run past midnight into the window. */
    int64_t first_day = sched_civil_day_of(sched_tz_utc_to_local(tz, from)) - 1;
    int64_t last_day = sched_civil_day_of(sched_tz_utc_to_local(tz, to));
    size_t cap = 64, m = 0;
    sched_interval_t *raw = util_xmalloc(cap * sizeof(*raw));
    for (int64_t day = first_day; day <= last_day; ++day) {
        unsigned bit = 1u << sched_civil_weekday(day);
        for (size_t i = 0; i != n; ++i) {
            const sched_avail_rule_t *r = &rules[i];
            if ((r->days & bit) == 0)
                continue;
            int64_t ls, le, s, e;
            if (r->all_day) {
                ls = day * SECS_PER_DAY;
                le = ls + SECS_PER_DAY;
            } else {
                ls = day * SECS_PER_DAY + r->start;
                le = (r->end <= r->start ? day + 1 : day) * SECS_PER_DAY + r->end;
            }
            /* Bounds outside the supported range can only lie outside the window too. */
            if (bound_to_utc(tz, ls, &s) != 0 || bound_to_utc(tz, le, &e) != 0 || s >= e)
                continue;
            if (m == cap) {
                cap *= 2;
                raw = util_xrealloc(raw, cap * sizeof(*raw));
            }
            raw[m++] = (sched_interval_t){s, e};
        }
    }
    normalize(out, raw, m);
    free(raw);
    sched_avail_set_clip(out, from, to);
    return 0;
}

/* First point of the alignment grid at or after local wall time `local`; the grid restarts at each local midnight. */
static int64_t next_grid_point(int64_t local, int64_t step)
{
    int64_t day = sched_civil_day_of(local);
    int64_t sec = local - day * SECS_PER_DAY;
    int64_t k = (sec + step - 1) / step * step;
    return k >= SECS_PER_DAY ? (day + 1) * SECS_PER_DAY : day * SECS_PER_DAY + k;
}

static bool query_is_valid(const sched_avail_query_t *q)
{
    return q->duration > 0 && q->duration <= SCHED_AVAIL_MAX_DURATION && q->buffer_before >= 0 &&
           q->buffer_before <= SCHED_AVAIL_MAX_BUFFER && q->buffer_after >= 0 && q->buffer_after <= SCHED_AVAIL_MAX_BUFFER &&
           q->align_minutes >= 1 && q->align_minutes <= 1440 && q->now >= SCHED_TIME_MIN && q->now <= SCHED_TIME_MAX &&
           q->min_notice >= 0 && q->max_horizon >= 0;
}

int sched_avail_find_starts(const sched_avail_set_t *avail, const sched_tz_t *tz, const sched_avail_query_t *query, int64_t *starts,
                            size_t cap, size_t *count)
{
    *count = 0;
    if (!query_is_valid(query))
        return -1;
    int64_t step = (int64_t)query->align_minutes * 60;
    int64_t earliest = query->min_notice > SCHED_TIME_MAX - query->now ? SCHED_TIME_MAX + 1 : query->now + query->min_notice;
    int64_t latest = query->max_horizon > SCHED_TIME_MAX - query->now ? SCHED_TIME_MAX : query->now + query->max_horizon;
    size_t n = 0;

    for (size_t i = 0; i != avail->count && n < cap; ++i) {
        int64_t lo = avail->items[i].start + query->buffer_before;
        int64_t hi = avail->items[i].end - query->duration - query->buffer_after;
        if (lo < earliest)
            lo = earliest;
        if (hi > latest)
            hi = latest;
        /* Walk the stretches of constant UTC offset; inside one, the grid in wall time is a grid in UTC. */
        for (int64_t u = lo; u <= hi && n < cap;) {
            int64_t off = sched_tz_offset_at_utc(tz, u), change;
            bool more = sched_tz_next_transition(tz, u, &change) == 0 && change <= hi;
            int64_t last = more ? change - 1 : hi;
            for (int64_t wall = next_grid_point(u + off, step); wall - off <= last && n < cap;
                 wall = next_grid_point(wall + 1, step))
                starts[n++] = wall - off;
            if (!more)
                break;
            u = change;
        }
    }
    *count = n;
    return 0;
}
