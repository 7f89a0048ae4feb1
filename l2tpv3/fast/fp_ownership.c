/* See fp_ownership.h; the rules are proto/ownership.py's, line by line. */
#include "fp_ownership.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int fp_own_init(struct fp_ownership *o)
{
    memset(o, 0, sizeof(*o));
    return pthread_mutex_init(&o->lock, NULL) == 0 ? 0 : -1;
}

void fp_own_clear(struct fp_ownership *o)
{
    free(o->tunnels);
    free(o->sessions);
    o->tunnels = NULL;
    o->sessions = NULL;
    o->ntunnels = o->nsessions = o->captunnels = o->capsessions = 0;
    pthread_mutex_destroy(&o->lock);
}

static struct fp_own_tunnel *find_tunnel(struct fp_ownership *o, uint32_t tunnel_id)
{
    for (size_t i = 0; i < o->ntunnels; i++)
        if (o->tunnels[i].tunnel_id == tunnel_id) return &o->tunnels[i];
    return NULL;
}

/* Index of the first session >= session_id. */
static size_t sessions_lower(const struct fp_ownership *o, uint32_t session_id)
{
    size_t lo = 0, hi = o->nsessions;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (o->sessions[mid].session_id < session_id) lo = mid + 1; else hi = mid;
    }
    return lo;
}

static struct fp_own_session *find_session(struct fp_ownership *o, uint32_t session_id)
{
    size_t i = sessions_lower(o, session_id);
    return i < o->nsessions && o->sessions[i].session_id == session_id ? &o->sessions[i] : NULL;
}

int fp_own_add_tunnel(struct fp_ownership *o, uint32_t tunnel_id, int family,
                      const uint8_t *local, const uint8_t *peer)
{
    int rc = 0;
    pthread_mutex_lock(&o->lock);
    struct fp_own_tunnel *t = find_tunnel(o, tunnel_id);
    if (!t) {
        if (o->ntunnels == o->captunnels) {
            size_t cap = o->captunnels ? o->captunnels * 2 : 8;
            struct fp_own_tunnel *n = realloc(o->tunnels, cap * sizeof(*n));
            if (!n) {
                rc = -1;
                goto out;
            }
            o->tunnels = n;
            o->captunnels = cap;
        }
        t = &o->tunnels[o->ntunnels++];
    }
    t->tunnel_id = tunnel_id;
    t->family = family;
    memcpy(t->local, local, 16);
    memcpy(t->peer, peer, 16);
out:
    pthread_mutex_unlock(&o->lock);
    return rc;
}

void fp_own_remove_tunnel(struct fp_ownership *o, uint32_t tunnel_id)
{
    pthread_mutex_lock(&o->lock);
    struct fp_own_tunnel *t = find_tunnel(o, tunnel_id);
    if (t) *t = o->tunnels[--o->ntunnels];
    size_t k = 0;
    for (size_t i = 0; i < o->nsessions; i++)
        if (o->sessions[i].tunnel_id != tunnel_id) o->sessions[k++] = o->sessions[i];
    o->nsessions = k;
    pthread_mutex_unlock(&o->lock);
}

int fp_own_claim(struct fp_ownership *o, uint32_t tunnel_id, uint32_t session_id,
                 uint32_t *other)
{
    int rc = 0;
    pthread_mutex_lock(&o->lock);
    size_t i = sessions_lower(o, session_id);
    if (i < o->nsessions && o->sessions[i].session_id == session_id) {
        if (o->sessions[i].tunnel_id != tunnel_id) {
            *other = o->sessions[i].tunnel_id;
            rc = 1;
        }
        goto out;
    }
    if (o->nsessions == o->capsessions) {
        size_t cap = o->capsessions ? o->capsessions * 2 : 64;
        struct fp_own_session *n = realloc(o->sessions, cap * sizeof(*n));
        if (!n) {
            rc = -1;
            goto out;
        }
        o->sessions = n;
        o->capsessions = cap;
    }
    memmove(o->sessions + i + 1, o->sessions + i, (o->nsessions - i) * sizeof(*o->sessions));
    o->sessions[i].session_id = session_id;
    o->sessions[i].tunnel_id = tunnel_id;
    o->nsessions++;
out:
    pthread_mutex_unlock(&o->lock);
    return rc;
}

void fp_own_release(struct fp_ownership *o, uint32_t session_id)
{
    pthread_mutex_lock(&o->lock);
    size_t i = sessions_lower(o, session_id);
    if (i < o->nsessions && o->sessions[i].session_id == session_id) {
        memmove(o->sessions + i, o->sessions + i + 1,
                (o->nsessions - i - 1) * sizeof(*o->sessions));
        o->nsessions--;
    }
    pthread_mutex_unlock(&o->lock);
}

int fp_own_owner(struct fp_ownership *o, uint32_t session_id, uint32_t *tunnel_id)
{
    pthread_mutex_lock(&o->lock);
    struct fp_own_session *s = find_session(o, session_id);
    if (s) *tunnel_id = s->tunnel_id;
    pthread_mutex_unlock(&o->lock);
    return s != NULL;
}

/* ownership.py counter(), the rule of proto/api.py IpOwnershipAPI. host NULL: the
 * tunnel's own peer. */
uint32_t fp_own_counter(struct fp_ownership *o, uint32_t tunnel_id, uint32_t session_id,
                        int family, const uint8_t *host)
{
    uint32_t r = tunnel_id;
    pthread_mutex_lock(&o->lock);
    const struct fp_own_tunnel *me = find_tunnel(o, tunnel_id);
    if (!me) goto out; /* alone on its listener, as far as anyone knows */
    if (!host) {
        host = me->peer;
        family = me->family;
    }
    /* 1. The owner of the session ID, if it listens here. */
    struct fp_own_session *s = find_session(o, session_id);
    if (s) {
        const struct fp_own_tunnel *t = find_tunnel(o, s->tunnel_id);
        if (t && t->family == me->family && memcmp(t->local, me->local, 16) == 0) {
            r = t->tunnel_id;
            goto out;
        }
    }
    /* 2. The tunnel here whose peer sent it (the lowest ID); 3. else the lowest here. */
    int by_peer = 0;
    r = me->tunnel_id;
    for (size_t i = 0; i < o->ntunnels; i++) {
        const struct fp_own_tunnel *t = &o->tunnels[i];
        if (t->family != me->family || memcmp(t->local, me->local, 16) != 0) continue;
        int peer = t->family == family && memcmp(t->peer, host, 16) == 0;
        if (peer > by_peer || (peer == by_peer && t->tunnel_id < r)) r = t->tunnel_id;
        if (peer) by_peer = 1;
    }
out:
    pthread_mutex_unlock(&o->lock);
    return r;
}
