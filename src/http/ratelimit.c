/*
 * Token buckets per client, shared by all loop threads. Clients hash (SipHash-2-4 with a random key, so nobody can
 * aim many keys at one chain) onto one of RL_STRIPES stripes, each a chained hash table under its own mutex.
 *
 * Tokens are counted in thousandths, so `per_second` tokens a second is exactly `per_second` thousandths a
 * millisecond and no floating point is involved. A bucket that has refilled completely holds no information (a new
 * client starts full), so sweeps drop those: memory follows the clients active in the last burst/per_second seconds.
 * Each stripe is capped; when it is full even after a sweep, new clients share the stripe's overflow bucket.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include "http/ratelimit.h"
#include "util/str.h"

#define MODULE_NAME "http/ratelimit.c"
#define RL_STRIPES 16
/* Takes on a stripe between two routine sweeps of it. */
#define RL_SWEEP_EVERY 1024
/* When a stripe is full, it is swept again after at least this many takes (bounds the sweeping work under a flood). */
#define RL_SWEEP_WHEN_FULL 64
#define RL_INITIAL_SLOTS 64
/* Thousandths of a token. */
#define RL_MILLI 1000u

typedef struct st_rl_bucket_t {
    struct st_rl_bucket_t *next;
    uint64_t hash;
    uint64_t tokens;  /* thousandths */
    uint64_t last_ms; /* when `tokens` was last brought up to date */
    size_t key_len;
    char key[];
} rl_bucket_t;

typedef struct st_rl_stripe_t {
    _Alignas(64) pthread_mutex_t lock; /* one cache line per stripe at least: no false sharing of the locks */
    rl_bucket_t **slots;
    size_t slot_count; /* a power of two */
    size_t count;
    unsigned calls; /* takes since the last sweep */
    uint64_t overflow_tokens, overflow_last_ms;
} rl_stripe_t;

static rl_stripe_t stripes[RL_STRIPES];
static bool initialized;
static uint64_t rate;     /* thousandths of a token per millisecond (= tokens per second); 0: unlimited */
static uint64_t capacity; /* thousandths */
static size_t stripe_max; /* buckets per stripe */
static uint64_t sip_key[2];

/* ---- SipHash-2-4 ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                                               \
    do {                                                                                                                       \
        v0 += v1;                                                                                                              \
        v1 = ROTL(v1, 13);                                                                                                     \
        v1 ^= v0;                                                                                                              \
        v0 = ROTL(v0, 32);                                                                                                     \
        v2 += v3;                                                                                                              \
        v3 = ROTL(v3, 16);                                                                                                     \
        v3 ^= v2;                                                                                                              \
        v0 += v3;                                                                                                              \
        v3 = ROTL(v3, 21);                                                                                                     \
        v3 ^= v0;                                                                                                              \
        v2 += v1;                                                                                                              \
        v1 = ROTL(v1, 17);                                                                                                     \
        v1 ^= v2;                                                                                                              \
        v2 = ROTL(v2, 32);                                                                                                     \
    } while (0)

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t siphash(const void *data, size_t len)
{
    const unsigned char *in = data;
    uint64_t v0 = 0x736f6d6570736575ULL ^ sip_key[0], v1 = 0x646f72616e646f6dULL ^ sip_key[1],
             v2 = 0x6c7967656e657261ULL ^ sip_key[0], v3 = 0x7465646279746573ULL ^ sip_key[1];
    size_t whole = len - len % 8;
    for (size_t i = 0; i != whole; i += 8) {
        uint64_t m = load_le64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i != len % 8; ++i)
        b |= (uint64_t)in[whole + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- buckets ---- */

/* Brings a bucket up to `now_ms`. Threads read the clock before taking the lock, so `now_ms` may be a little older
 * than the bucket's time: then nothing is added and the bucket's time does not go back. */
static void refill(uint64_t *tokens, uint64_t *last_ms, uint64_t now_ms)
{
    if (now_ms <= *last_ms)
        return;
    uint64_t elapsed = now_ms - *last_ms, missing = capacity - *tokens;
    /* elapsed * rate cannot overflow in the second branch: it is at most `missing`. */
    *tokens = elapsed > missing / rate ? capacity : *tokens + elapsed * rate;
    *last_ms = now_ms;
}

static bool take_token(uint64_t *tokens, unsigned *retry_after_seconds)
{
    if (*tokens >= RL_MILLI) {
        *tokens -= RL_MILLI;
        return true;
    }
    uint64_t wait_ms = (RL_MILLI - *tokens + rate - 1) / rate;
    uint64_t seconds = (wait_ms + 999) / 1000;
    if (retry_after_seconds != NULL)
        *retry_after_seconds = seconds < 1 ? 1 : (unsigned)seconds;
    return false;
}

/* True when the bucket will be full at `now_ms`, i.e. it is the same as no bucket. */
static bool is_full(const rl_bucket_t *b, uint64_t now_ms)
{
    if (b->tokens >= capacity)
        return true;
    return now_ms > b->last_ms && now_ms - b->last_ms > (capacity - b->tokens - 1) / rate;
}

static void sweep(rl_stripe_t *s, uint64_t now_ms)
{
    s->calls = 0;
    for (size_t i = 0; i != s->slot_count; ++i) {
        for (rl_bucket_t **p = &s->slots[i]; *p != NULL;) {
            rl_bucket_t *b = *p;
            if (is_full(b, now_ms)) {
                *p = b->next;
                free(b);
                --s->count;
            } else {
                p = &b->next;
            }
        }
    }
}

static void grow(rl_stripe_t *s)
{
    size_t n = s->slot_count * 2;
    rl_bucket_t **slots = util_xcalloc(n, sizeof(*slots));
    for (size_t i = 0; i != s->slot_count; ++i) {
        for (rl_bucket_t *b = s->slots[i], *next; b != NULL; b = next) {
            next = b->next;
            rl_bucket_t **head = &slots[b->hash & (n - 1)];
            b->next = *head;
            *head = b;
        }
    }
    free(s->slots);
    s->slots = slots;
    s->slot_count = n;
}

void http_ratelimit_init(unsigned per_second, unsigned burst)
{
    if (initialized)
        http_ratelimit_dispose();
    if (getrandom(sip_key, sizeof(sip_key), 0) != sizeof(sip_key)) {
        /* No entropy source: still a working table, only easier to flood. */
        sip_key[0] = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
        sip_key[1] = (uint64_t)(uintptr_t)&sip_key ^ 0xc2b2ae3d27d4eb4fULL;
    }
    rate = per_second;
    capacity = (uint64_t)(burst < 1 ? 1 : burst) * RL_MILLI;
    stripe_max = HTTP_RATELIMIT_MAX_CLIENTS / RL_STRIPES;
    for (size_t i = 0; i != RL_STRIPES; ++i) {
        rl_stripe_t *s = &stripes[i];
        pthread_mutex_init(&s->lock, NULL);
        s->slot_count = RL_INITIAL_SLOTS;
        s->slots = util_xcalloc(s->slot_count, sizeof(*s->slots));
        s->count = 0;
        s->calls = 0;
        s->overflow_tokens = capacity;
        s->overflow_last_ms = 0;
    }
    initialized = true;
}

void http_ratelimit__set_max_clients(size_t max_clients)
{
    stripe_max = max_clients / RL_STRIPES > 0 ? max_clients / RL_STRIPES : 1;
}

bool http_ratelimit_take(const char *client, uint64_t now_ms, unsigned *retry_after_seconds)
{
    if (!initialized || rate == 0)
        return true;
    if (client == NULL)
        client = "";
    size_t len = strnlen(client, HTTP_RATELIMIT_MAX_KEY);
    uint64_t hash = siphash(client, len);
    rl_stripe_t *s = &stripes[hash >> 60]; /* top bits pick the stripe, low bits the slot */
    bool allowed;

    pthread_mutex_lock(&s->lock);
    if (++s->calls >= RL_SWEEP_EVERY)
        sweep(s, now_ms);
    rl_bucket_t *b = s->slots[hash & (s->slot_count - 1)];
    while (b != NULL && !(b->hash == hash && b->key_len == len && memcmp(b->key, client, len) == 0))
        b = b->next;
    if (b == NULL && s->count >= stripe_max && s->calls >= RL_SWEEP_WHEN_FULL)
        sweep(s, now_ms);
    if (b == NULL && s->count >= stripe_max) {
        /* Full of active clients: newcomers share one bucket rather than grow the table. */
        if (s->overflow_last_ms == 0)
            s->overflow_last_ms = now_ms;
        refill(&s->overflow_tokens, &s->overflow_last_ms, now_ms);
        allowed = take_token(&s->overflow_tokens, retry_after_seconds);
        goto Exit;
    }
    if (b == NULL) {
        if (s->count >= s->slot_count)
            grow(s);
        b = util_xmalloc(sizeof(*b) + len);
        b->hash = hash;
        b->tokens = capacity;
        b->last_ms = now_ms;
        b->key_len = len;
        memcpy(b->key, client, len);
        rl_bucket_t **head = &s->slots[hash & (s->slot_count - 1)];
        b->next = *head;
        *head = b;
        ++s->count;
    } else {
        refill(&b->tokens, &b->last_ms, now_ms);
    }
    allowed = take_token(&b->tokens, retry_after_seconds);
Exit:
    pthread_mutex_unlock(&s->lock);
    return allowed;
}

size_t http_ratelimit__clients(void)
{
    if (!initialized)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i != RL_STRIPES; ++i) {
        pthread_mutex_lock(&stripes[i].lock);
        n += stripes[i].count;
        pthread_mutex_unlock(&stripes[i].lock);
    }
    return n;
}

void http_ratelimit_dispose(void)
{
    if (!initialized)
        return;
    for (size_t i = 0; i != RL_STRIPES; ++i) {
        rl_stripe_t *s = &stripes[i];
        for (size_t j = 0; j != s->slot_count; ++j) {
            for (rl_bucket_t *b = s->slots[j], *next; b != NULL; b = next) {
                next = b->next;
                free(b);
            }
        }
        free(s->slots);
        s->slots = NULL;
        s->slot_count = 0;
        s->count = 0;
        pthread_mutex_destroy(&s->lock);
    }
    rate = 0;
    initialized = false;
}
