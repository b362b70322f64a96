/*
 * TZif reader (RFC 8536) and POSIX TZ rule evaluation for the footer string. Offsets are found by binary search in the
 * transition table; instants after the table's last transition follow the footer rule, computed per year on demand.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sched/tz.h"
#include "util/str.h"

/* RFC 8536 section 3.2: utoff SHOULD lie in -89999..93599 (just under -25h..+26h). */
#define UTOFF_MIN (-89999)
#define UTOFF_MAX 93599
/* Every instant a local wall time can denote lies within this distance of it. */
#define OFFSET_REACH 93600
/* Arithmetic on instants is clamped to this magnitude, far beyond any calendar use, so no sum can overflow. */
#define CALC_LIMIT (INT64_C(1) << 56)
/* A real TZif file is a few KiB; these caps keep a corrupt one from costing much. */
#define TZIF_MAX_FILE (256 * 1024)
#define TZIF_MAX_TRANSITIONS 20000
#define TZIF_MAX_FOOTER 256
#define CACHE_MAX 64
#define SECS_PER_DAY 86400

/* One date of a POSIX TZ rule ("M3.2.0/2", "J60", "59/25"). */
typedef struct st_rule_date_t {
    char kind;    /* 'J': day 1..365 never counting Feb 29; 'D': zero-based day 0..365; 'M': month, week, weekday */
    int n;        /* day for 'J' and 'D' */
    int m, w, d;  /* 'M': month 1..12, week 1..5 (5 = last), weekday 0..6 (0 = Sunday) */
    int32_t time; /* local time of the change in seconds after midnight, -167h..167h (TZif v3) */
} rule_date_t;

/* The footer TZ string, e.g. "CET-1CEST,M3.5.0,M10.5.0/3". */
typedef struct st_footer_t {
    int32_t std_off; /* seconds east of Greenwich (POSIX writes them west, so "CET-1" is +3600) */
    int32_t dst_off;
    bool has_dst;
    rule_date_t start; /* given in standard local time */
    rule_date_t end;   /* given in daylight local time */
} footer_t;

/* A change computed from the footer rule. */
typedef struct st_footer_change_t {
    int64_t at;
    int32_t off;
    bool dst;
} footer_change_t;

struct st_sched_tz_t {
    char *name;
    int64_t *trans; /* ascending instants */
    uint8_t *trans_type;
    size_t ntrans;
    int32_t *type_off; /* utoff of each local time type */
    size_t ntypes;
    bool has_footer;
    footer_t footer;
    unsigned _refs; /* guarded by lock */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static sched_tz_t *cache[CACHE_MAX];
static size_t cache_count;

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list args;
    va_start(args, fmt);
    vsnprintf(err, errlen, fmt, args);
    va_end(args);
}

/* ---- civil calendar (util_days_from_civil and util_civil_from_days, util/time.c) ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned sched_civil_weekday(int64_t days)
{
    /* 1970-01-01 was a Thursday (3 when Monday is 0). */
    int64_t r = (days + 3) % 7;
    return (unsigned)(r < 0 ? r + 7 : r);
}

unsigned sched_civil_days_in_month(int64_t y, unsigned m)
{
    static const unsigned len[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12)
        return 0;
    return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

int64_t sched_civil_day_of(int64_t seconds)
{
    return floor_div(seconds, SECS_PER_DAY);
}

static int64_t clamp_instant(int64_t t)
{
    return t > CALC_LIMIT ? CALC_LIMIT : t < -CALC_LIMIT ? -CALC_LIMIT : t;
}

static int64_t year_of(int64_t seconds)
{
    int64_t y;
    unsigned m, d;
    util_civil_from_days(sched_civil_day_of(seconds), &y, &m, &d);
    return y;
}

/* ---- footer rule ---- */

/* Day (since the epoch) on which a rule date falls in year y. */
static int64_t rule_day(const rule_date_t *r, int64_t y)
{
    int64_t jan1 = util_days_from_civil(y, 1, 1);
    switch (r->kind) {
    case 'J':
        return jan1 + r->n - 1 + (is_leap(y) && r->n >= 60);
    case 'D':
        return jan1 + r->n;
    default: {
        int64_t first = util_days_from_civil(y, (unsigned)r->m, 1);
        int sunday_based = (int)((sched_civil_weekday(first) + 1) % 7);
        int64_t day = first + (r->d - sunday_based + 7) % 7 + (int64_t)(r->w - 1) * 7;
        int64_t dim = sched_civil_days_in_month(y, (unsigned)r->m);
        while (day >= first + dim) /* week 5 means "last" */
            day -= 7;
        return day;
    }
    }
}

/* The footer's changes in years y0 .. y0+nyears-1, sorted; at equal instants the end of DST sorts first so that a
 * rule with DST all year ("EST5EDT,0/0,J365/25") stays in DST across the year boundary. */
static size_t footer_changes(const footer_t *f, int64_t y0, int nyears, footer_change_t *out)
{
    size_t n = 0;
    for (int i = 0; i != nyears; ++i) {
        int64_t y = y0 + i;
        out[n++] = (footer_change_t){rule_day(&f->start, y) * SECS_PER_DAY + f->start.time - f->std_off, f->dst_off, true};
        out[n++] = (footer_change_t){rule_day(&f->end, y) * SECS_PER_DAY + f->end.time - f->dst_off, f->std_off, false};
    }
    for (size_t i = 1; i < n; ++i) {
        footer_change_t c = out[i];
        size_t j = i;
        while (j > 0 && (out[j - 1].at > c.at || (out[j - 1].at == c.at && out[j - 1].dst && !c.dst))) {
            out[j] = out[j - 1];
            --j;
        }
        out[j] = c;
    }
    return n;
}

static int32_t footer_offset(const footer_t *f, int64_t t)
{
    if (!f->has_dst)
        return f->std_off;
    /* Changes of year y-2 all lie well before any instant of year y, so they fix the state the search starts from. */
    footer_change_t ch[8];
    size_t n = footer_changes(f, year_of(t + f->std_off) - 2, 4, ch);
    int32_t off = f->std_off;
    for (size_t i = 0; i != n && ch[i].at <= t; ++i)
        off = ch[i].off;
    return off;
}

/* First change after t that moves the offset away from `cur`; changes at one instant count as one. */
static int footer_next(const footer_t *f, int64_t t, int32_t cur, int64_t *next)
{
    if (!f->has_dst)
        return -1;
    /* Look at years y-1 .. y+3 but only before the last year's first change: a change there may tie with one of the
     * year after, which is not in the list, and would look like a real change. */
    footer_change_t ch[10];
    int64_t y = year_of(t + f->std_off);
    size_t n = footer_changes(f, y - 1, 5, ch);
    int64_t start_last = rule_day(&f->start, y + 3) * SECS_PER_DAY + f->start.time - f->std_off;
    int64_t end_last = rule_day(&f->end, y + 3) * SECS_PER_DAY + f->end.time - f->dst_off;
    int64_t limit = start_last < end_last ? start_last : end_last;
    for (size_t i = 0; i < n && ch[i].at < limit; ++i) {
        if (ch[i].at <= t)
            continue;
        size_t j = i;
        while (j + 1 < n && ch[j + 1].at == ch[i].at)
            ++j;
        if (ch[j].off != cur) {
            *next = ch[i].at;
            return 0;
        }
        cur = ch[j].off;
        i = j;
    }
    return -1; /* DST all year, or standard time all year: the offset never changes */
}

static const char *parse_tz_name(const char *s)
{
    const char *start;
    if (*s == '<') {
        start = ++s;
        while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '+' || *s == '-')
            ++s;
        if (*s != '>' || s - start < 3)
            return NULL;
        return s + 1;
    }
    start = s;
    while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z'))
        ++s;
    return s - start < 3 ? NULL : s;
}

static const char *parse_number(const char *s, int maxdigits, int max, int *out)
{
    int v = 0, digits = 0;
    while (*s >= '0' && *s <= '9' && digits < maxdigits) {
        v = v * 10 + (*s++ - '0');
        ++digits;
    }
    if (digits == 0 || v > max || (*s >= '0' && *s <= '9'))
        return NULL;
    *out = v;
    return s;
}

/* [+|-]hh[:mm[:ss]] with hh <= maxh; returns seconds in *out. */
static const char *parse_hms(const char *s, int maxh, int32_t *out)
{
    int sign = 1, h, m = 0, sec = 0;
    if (*s == '+' || *s == '-')
        sign = *s++ == '-' ? -1 : 1;
    if ((s = parse_number(s, 3, maxh, &h)) == NULL)
        return NULL;
    if (*s == ':') {
        if ((s = parse_number(s + 1, 2, 59, &m)) == NULL)
            return NULL;
        if (*s == ':' && (s = parse_number(s + 1, 2, 59, &sec)) == NULL)
            return NULL;
    }
    *out = sign * (h * 3600 + m * 60 + sec);
    return s;
}

static const char *parse_rule_date(const char *s, rule_date_t *r)
{
    if (*s == 'J') {
        r->kind = 'J';
        if ((s = parse_number(s + 1, 3, 365, &r->n)) == NULL || r->n < 1)
            return NULL;
    } else if (*s == 'M') {
        r->kind = 'M';
        if ((s = parse_number(s + 1, 2, 12, &r->m)) == NULL || r->m < 1 || *s != '.')
            return NULL;
        if ((s = parse_number(s + 1, 1, 5, &r->w)) == NULL || r->w < 1 || *s != '.')
            return NULL;
        if ((s = parse_number(s + 1, 1, 6, &r->d)) == NULL)
            return NULL;
    } else {
        r->kind = 'D';
        if ((s = parse_number(s, 3, 365, &r->n)) == NULL)
            return NULL;
    }
    r->time = 7200; /* POSIX default: 02:00 */
    if (*s == '/')
        s = parse_hms(s + 1, 167, &r->time);
    return s;
}

/* Parses a non-empty POSIX TZ string as TZif footers use it. */
static int parse_footer(const char *s, footer_t *f)
{
    int32_t west;
    memset(f, 0, sizeof(*f));
    if ((s = parse_tz_name(s)) == NULL || (s = parse_hms(s, 24, &west)) == NULL)
        return -1;
    f->std_off = -west;
    if (*s != '\0') {
        if ((s = parse_tz_name(s)) == NULL)
            return -1;
        f->has_dst = true;
        f->dst_off = f->std_off + 3600;
        if (*s != ',' && *s != '\0') {
            if ((s = parse_hms(s, 24, &west)) == NULL)
                return -1;
            f->dst_off = -west;
        }
        if (*s == ',') {
            if ((s = parse_rule_date(s + 1, &f->start)) == NULL || *s != ',' || (s = parse_rule_date(s + 1, &f->end)) == NULL)
                return -1;
        } else {
            /* No rule: tzcode's default, the US rules since 2007. */
            f->start = (rule_date_t){'M', 0, 3, 2, 0, 7200};
            f->end = (rule_date_t){'M', 0, 11, 1, 0, 7200};
        }
    }
    if (*s != '\0')
        return -1;
    if (f->std_off < UTOFF_MIN || f->std_off > UTOFF_MAX || f->dst_off < UTOFF_MIN || f->dst_off > UTOFF_MAX)
        return -1;
    return 0;
}

/* ---- TZif ---- */

typedef struct st_tzif_header_t {
    uint8_t version;
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} tzif_header_t;

typedef struct st_reader_t {
    const uint8_t *p;
    size_t left;
} reader_t;

static const uint8_t *take(reader_t *r, size_t n)
{
    if (n > r->left)
        return NULL;
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static const char *read_header(reader_t *r, tzif_header_t *h)
{
    const uint8_t *p = take(r, 44);
    if (p == NULL)
        return "truncated header";
    if (memcmp(p, "TZif", 4) != 0)
        return "not a TZif file";
    h->version = p[4];
    if (h->version != 0 && (h->version < '2' || h->version > '4'))
        return "unsupported TZif version";
    h->isutcnt = be32(p + 20);
    h->isstdcnt = be32(p + 24);
    h->leapcnt = be32(p + 28);
    h->timecnt = be32(p + 32);
    h->typecnt = be32(p + 36);
    h->charcnt = be32(p + 40);
    if (h->typecnt == 0 || h->typecnt > 256 || h->charcnt == 0 || h->charcnt > 1024 || h->timecnt > TZIF_MAX_TRANSITIONS)
        return "counts out of range";
    if ((h->isutcnt != 0 && h->isutcnt != h->typecnt) || (h->isstdcnt != 0 && h->isstdcnt != h->typecnt))
        return "indicator counts do not match the type count";
    if (h->leapcnt != 0)
        return "leap-second zones are not supported";
    return NULL;
}

static size_t block_size(const tzif_header_t *h, size_t timesize)
{
    return h->timecnt * timesize + h->timecnt + h->typecnt * 6 + h->charcnt + h->leapcnt * (timesize + 4) + h->isstdcnt +
           h->isutcnt;
}

/* Reads one data block into tz; the caller has checked that it is all there. */
static const char *read_block(reader_t *r, const tzif_header_t *h, size_t timesize, sched_tz_t *tz)
{
    tz->ntrans = h->timecnt;
    tz->ntypes = h->typecnt;
    tz->trans = util_xmalloc((h->timecnt + 1) * sizeof(*tz->trans));
    tz->trans_type = util_xmalloc(h->timecnt + 1);
    tz->type_off = util_xmalloc(h->typecnt * sizeof(*tz->type_off));
    for (size_t i = 0; i != h->timecnt; ++i) {
        const uint8_t *p = take(r, timesize);
        tz->trans[i] = timesize == 8 ? be64(p) : (int64_t)(int32_t)be32(p);
        if (i > 0 && tz->trans[i] <= tz->trans[i - 1])
            return "transitions out of order";
    }
    for (size_t i = 0; i != h->timecnt; ++i) {
        tz->trans_type[i] = *take(r, 1);
        if (tz->trans_type[i] >= h->typecnt)
            return "transition type out of range";
    }
    for (size_t i = 0; i != h->typecnt; ++i) {
        const uint8_t *p = take(r, 6);
        int32_t off = (int32_t)be32(p);
        if (off < UTOFF_MIN || off > UTOFF_MAX)
            return "UTC offset out of range";
        if (p[4] > 1 || p[5] >= h->charcnt)
            return "bad local time type";
        tz->type_off[i] = off;
    }
    take(r, h->charcnt + h->isstdcnt + h->isutcnt); /* abbreviations and indicators: not needed for offsets */
    return NULL;
}

static void free_zone(sched_tz_t *tz)
{
    if (tz == NULL)
        return;
    free(tz->name);
    free(tz->trans);
    free(tz->trans_type);
    free(tz->type_off);
    free(tz);
}

sched_tz_t *sched_tz_parse(const char *name, const uint8_t *data, size_t len, char *err, size_t errlen)
{
    reader_t r = {data, len};
    tzif_header_t h;
    const char *why;
    sched_tz_t *tz = util_xcalloc(1, sizeof(*tz));
    tz->name = util_xstrdup(name);
    tz->_refs = 1;

    if ((why = read_header(&r, &h)) != NULL)
        goto Error;
    if (block_size(&h, 4) > r.left) {
        why = "truncated data";
        goto Error;
    }
    if (h.version == 0) {
        if ((why = read_block(&r, &h, 4, tz)) != NULL)
            goto Error;
        return tz;
    }
    /* Version 2+: skip the 32-bit block, read the 64-bit one and the footer. */
    take(&r, block_size(&h, 4));
    if ((why = read_header(&r, &h)) != NULL)
        goto Error;
    if (block_size(&h, 8) > r.left) {
        why = "truncated data";
        goto Error;
    }
    if ((why = read_block(&r, &h, 8, tz)) != NULL)
        goto Error;
    const uint8_t *nl = take(&r, 1);
    if (nl == NULL || *nl != '\n') {
        why = "missing footer";
        goto Error;
    }
    const uint8_t *end = memchr(r.p, '\n', r.left);
    size_t flen = end == NULL ? 0 : (size_t)(end - r.p);
    if (end == NULL || flen > TZIF_MAX_FOOTER || memchr(r.p, '\0', flen) != NULL) {
        why = "bad footer";
        goto Error;
    }
    if (flen != 0) {
        char footer[TZIF_MAX_FOOTER + 1];
        memcpy(footer, r.p, flen);
        footer[flen] = '\0';
        if (parse_footer(footer, &tz->footer) != 0) {
            why = "bad footer TZ string";
            goto Error;
        }
        tz->has_footer = true;
    }
    return tz;

Error:
    set_err(err, errlen, "time zone \"%s\": %s", name, why);
    free_zone(tz);
    return NULL;
}

/* ---- loading and the cache ---- */

static bool name_is_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > SCHED_TZ_NAME_MAX)
        return false;
    const char *s = name;
    for (;;) {
        /* Each component is non-empty and never starts with '.', which rules out "." and "..". */
        if (*s == '/' || *s == '.' || *s == '\0')
            return false;
        while (*s != '/' && *s != '\0') {
            char c = *s++;
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '+' || c == '-' ||
                  c == '.'))
                return false;
        }
        if (*s == '\0')
            return true;
        ++s;
    }
}

/* Reads the file behind `name`, checking that symbolic links do not lead outside SCHED_TZ_DIR. */
static uint8_t *read_zone_file(const char *name, size_t *len, char *err, size_t errlen)
{
    char path[sizeof(SCHED_TZ_DIR) + SCHED_TZ_NAME_MAX + 2];
    char *root = NULL, *real = NULL;
    uint8_t *data = NULL;
    int fd = -1;

    snprintf(path, sizeof(path), "%s/%s", SCHED_TZ_DIR, name);
    if ((root = realpath(SCHED_TZ_DIR, NULL)) == NULL) {
        set_err(err, errlen, "time zone data missing: %s: %s", SCHED_TZ_DIR, strerror(errno));
        goto Exit;
    }
    if ((real = realpath(path, NULL)) == NULL) {
        set_err(err, errlen, "unknown time zone \"%s\"", name);
        goto Exit;
    }
    size_t rootlen = strlen(root);
    if (strncmp(real, root, rootlen) != 0 || real[rootlen] != '/') {
        set_err(err, errlen, "time zone \"%s\" lies outside %s", name, SCHED_TZ_DIR);
        goto Exit;
    }
    struct stat st;
    if ((fd = open(real, O_RDONLY | O_CLOEXEC)) == -1 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_err(err, errlen, "unknown time zone \"%s\"", name);
        goto Exit;
    }
    if (st.st_size <= 0 || st.st_size > TZIF_MAX_FILE) {
        set_err(err, errlen, "time zone \"%s\": not a TZif file", name);
        goto Exit;
    }
    data = util_xmalloc((size_t)st.st_size);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            set_err(err, errlen, "time zone \"%s\": read failed", name);
            free(data);
            data = NULL;
            goto Exit;
        }
        got += (size_t)n;
    }
    *len = got;

Exit:
    if (fd != -1)
        close(fd);
    free(real);
    free(root);
    return data;
}

/* Looks `name` up in the cache and takes a reference; the caller holds the lock. */
static sched_tz_t *cache_find(const char *name)
{
    for (size_t i = 0; i != cache_count; ++i) {
        if (strcmp(cache[i]->name, name) == 0) {
            ++cache[i]->_refs;
            return cache[i];
        }
    }
    return NULL;
}

sched_tz_t *sched_tz_load(const char *name, char *err, size_t errlen)
{
    /* "localtime" is a link to the machine's /etc/localtime, not an IANA zone; a rule must not follow host settings. */
    if (name == NULL || !name_is_valid(name) || strcmp(name, "localtime") == 0) {
        set_err(err, errlen, "invalid time zone name");
        return NULL;
    }
    pthread_mutex_lock(&lock);
    sched_tz_t *tz = cache_find(name);
    pthread_mutex_unlock(&lock);
    if (tz != NULL)
        return tz;

    /* File I/O happens outside the lock; two threads may race to load one zone, and the loser's copy is dropped. */
    size_t len;
    uint8_t *data = read_zone_file(name, &len, err, errlen);
    if (data == NULL)
        return NULL;
    sched_tz_t *fresh = sched_tz_parse(name, data, len, err, errlen);
    free(data);
    if (fresh == NULL)
        return NULL;

    pthread_mutex_lock(&lock);
    if ((tz = cache_find(name)) == NULL) {
        tz = fresh;
        fresh = NULL;
        if (cache_count < CACHE_MAX) {
            ++tz->_refs; /* the cache's own reference */
            cache[cache_count++] = tz;
        }
    }
    pthread_mutex_unlock(&lock);
    free_zone(fresh);
    return tz;
}

sched_tz_t *sched_tz_retain(sched_tz_t *tz)
{
    pthread_mutex_lock(&lock);
    ++tz->_refs;
    pthread_mutex_unlock(&lock);
    return tz;
}

void sched_tz_destroy(sched_tz_t *tz)
{
    if (tz == NULL)
        return;
    pthread_mutex_lock(&lock);
    bool last = --tz->_refs == 0;
    pthread_mutex_unlock(&lock);
    if (last)
        free_zone(tz);
}

void sched_tz_cache_clear(void)
{
    sched_tz_t *drop[CACHE_MAX];
    size_t ndrop = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i != cache_count; ++i)
        if (--cache[i]->_refs == 0)
            drop[ndrop++] = cache[i];
    cache_count = 0;
    pthread_mutex_unlock(&lock);
    for (size_t i = 0; i != ndrop; ++i)
        free_zone(drop[i]);
}

const char *sched_tz_name(const sched_tz_t *tz)
{
    return tz->name;
}

/* ---- queries ---- */

/* Index of the last transition at or before t; the caller has checked trans[0] <= t. */
static size_t last_transition_at_or_before(const sched_tz_t *tz, int64_t t)
{
    size_t lo = 0, hi = tz->ntrans;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static int32_t offset_at(const sched_tz_t *tz, int64_t t)
{
    t = clamp_instant(t);
    if (tz->ntrans == 0)
        return tz->has_footer ? footer_offset(&tz->footer, t) : tz->type_off[0];
    if (t < tz->trans[0])
        return tz->type_off[0]; /* RFC 8536: type 0 governs instants before the first transition */
    if (t >= tz->trans[tz->ntrans - 1] && tz->has_footer)
        return footer_offset(&tz->footer, t);
    return tz->type_off[tz->trans_type[last_transition_at_or_before(tz, t)]];
}

int64_t sched_tz_offset_at_utc(const sched_tz_t *tz, int64_t utc)
{
    return offset_at(tz, utc);
}

int64_t sched_tz_utc_to_local(const sched_tz_t *tz, int64_t utc)
{
    utc = clamp_instant(utc);
    return utc + offset_at(tz, utc);
}

int sched_tz_next_transition(const sched_tz_t *tz, int64_t utc, int64_t *next)
{
    int64_t t = clamp_instant(utc);
    int32_t cur = offset_at(tz, t);
    if (tz->ntrans != 0 && t < tz->trans[tz->ntrans - 1]) {
        size_t i = t < tz->trans[0] ? 0 : last_transition_at_or_before(tz, t) + 1;
        for (; i != tz->ntrans; ++i) {
            if (tz->type_off[tz->trans_type[i]] != cur) {
                *next = tz->trans[i];
                return 0;
            }
        }
        t = tz->trans[tz->ntrans - 1];
    }
    if (!tz->has_footer)
        return -1;
    return footer_next(&tz->footer, t, cur, next);
}

int sched_tz_local_resolve(const sched_tz_t *tz, int64_t local, sched_tz_local_t *out)
{
    if (local < SCHED_TIME_MIN || local > SCHED_TIME_MAX)
        return -1;
    /* Walk the stretches of constant offset around `local`; in each, local - offset is a solution if it falls inside. */
    int64_t hi = local + OFFSET_REACH, u = local - OFFSET_REACH, first = 0, last = 0, gap_end = 0, gap_shifted = 0;
    int32_t off = offset_at(tz, u);
    size_t found = 0;
    bool gap = false;
    for (;;) {
        int64_t change;
        bool more = sched_tz_next_transition(tz, u, &change) == 0 && change <= hi;
        int64_t end = more ? change : hi + 1, candidate = local - off;
        if (candidate >= u && candidate < end) {
            if (found++ == 0)
                first = candidate;
            last = candidate;
        }
        if (!more)
            break;
        int32_t after = offset_at(tz, change);
        if (after > off && local >= change + off && local < change + after) {
            gap = true;
            gap_end = change;
            gap_shifted = local - off;
        }
        u = change;
        off = after;
    }
    if (found > 0) {
        *out = (sched_tz_local_t){found > 1 ? SCHED_TZ_LOCAL_OVERLAP : SCHED_TZ_LOCAL_UNIQUE, first, last};
        return 0;
    }
    if (gap) {
        *out = (sched_tz_local_t){SCHED_TZ_LOCAL_GAP, gap_end, gap_shifted};
        return 0;
    }
    return -1;
}

int sched_tz_local_to_utc(const sched_tz_t *tz, int64_t local, int64_t *utc)
{
    sched_tz_local_t r;
    if (sched_tz_local_resolve(tz, local, &r) != 0)
        return -1;
    *utc = r.kind == SCHED_TZ_LOCAL_GAP ? r.later : r.earlier;
    return 0;
}
