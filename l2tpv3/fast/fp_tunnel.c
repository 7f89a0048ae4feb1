/* See fp_tunnel.h; the rules are proto/tunnel.py's. */
#define _GNU_SOURCE
#include "fp_tunnel.h"
#include "fp_engine.h"
#include "fp_capture.h"

#include <stdlib.h>
#include <string.h>

int fp_tunnel_init(struct fp_tunnel *t, int udp, uint32_t tunnel_id, struct fp_ownership *own)
{
    memset(t, 0, sizeof(*t));
    t->udp = udp;
    t->tunnel_id = tunnel_id;
    t->own = own;
    t->nbuckets = 64;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    if (!t->buckets) return -1;
    pthread_mutex_init(&t->rx_lock, NULL);
    pthread_mutex_init(&t->tx_lock, NULL);
    return 0;
}

void fp_tunnel_clear(struct fp_tunnel *t)
{
    if (t->engine) fp_engine_stop(t);
    fp_capture_stop(t);
    /* Sessions may outlive their tunnel: they must not count into it any more. */
    for (size_t i = 0; i < t->nbuckets; i++)
        for (struct fp_session *s = t->buckets[i]; s; s = s->hnext) s->queued_total = NULL;
    free(t->buckets);
    t->buckets = NULL;
    pthread_mutex_destroy(&t->rx_lock);
    pthread_mutex_destroy(&t->tx_lock);
}

void fp_tunnel_lock(struct fp_tunnel *t)
{
    pthread_mutex_lock(&t->rx_lock);
    pthread_mutex_lock(&t->tx_lock);
}

void fp_tunnel_unlock(struct fp_tunnel *t)
{
    pthread_mutex_unlock(&t->tx_lock);
    pthread_mutex_unlock(&t->rx_lock);
}

static int grow(struct fp_tunnel *t)
{
    size_t n = t->nbuckets * 2;
    struct fp_session **b = calloc(n, sizeof(*b));
    if (!b) return -1;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct fp_session *s = t->buckets[i];
        while (s) {
            struct fp_session *next = s->hnext;
            size_t k = fp_bucket(s->session_id, n);
            s->hnext = b[k];
            b[k] = s;
            s = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
    return 0;
}

int fp_tunnel_add(struct fp_tunnel *t, struct fp_session *s)
{
    int rc = 0;
    fp_tunnel_lock(t);
    if (t->nsessions >= t->nbuckets && grow(t) < 0) {
        rc = -1;
    } else {
        size_t k = fp_bucket(s->session_id, t->nbuckets);
        s->hnext = t->buckets[k];
        t->buckets[k] = s;
        t->nsessions++;
        s->queued_total = &t->queued;
        t->queued += (long)s->qlen;
    }
    fp_tunnel_unlock(t);
    return rc;
}

void fp_tunnel_remove(struct fp_tunnel *t, struct fp_session *s)
{
    fp_tunnel_lock(t);
    struct fp_session **pp = &t->buckets[fp_bucket(s->session_id, t->nbuckets)];
    while (*pp && *pp != s) pp = &(*pp)->hnext;
    if (*pp) {
        *pp = s->hnext;
        s->hnext = NULL;
        t->nsessions--;
        t->queued -= (long)s->qlen;
        s->queued_total = NULL;
        for (int i = 0; i < FP_NCOUNTERS; i++) t->retired[i] += s->c[i];
    }
    fp_tunnel_unlock(t);
}

void fp_tunnel_drop(struct fp_tunnel *t, int reason)
{
    t->drops[reason]++;
    t->c[FP_RX_INVALID]++;
}

/* Over IP, from our peer: count it unless the ownership says another tunnel on our
 * listener counts it (proto/tunnel.py _ip_drop). */
static void ip_drop(struct fp_tunnel *t, int reason, uint32_t sid)
{
    if (!t->own || fp_own_counter(t->own, t->tunnel_id, sid, 0, NULL) == t->tunnel_id)
        fp_tunnel_drop(t, reason);
}

static void queue_control(struct fp_tunnel *t, const uint8_t *p, size_t len)
{
    if (len > FP_CONTROL_MAX_LEN || t->nctl >= FP_CONTROL_QUEUE_SLOTS) return;
    memcpy(t->ctl[t->nctl], p, len);
    t->ctl_len[t->nctl++] = (uint16_t)len;
    t->ctl_new = 1;
}

int fp_tunnel_take_control(struct fp_tunnel *t, uint8_t (*out)[FP_CONTROL_MAX_LEN],
                           uint16_t *lens, int max)
{
    pthread_mutex_lock(&t->rx_lock);
    int n = t->nctl < max ? t->nctl : max;
    for (int i = 0; i < n; i++) {
        memcpy(out[i], t->ctl[i], t->ctl_len[i]);
        lens[i] = t->ctl_len[i];
    }
    t->nctl = 0;
    pthread_mutex_unlock(&t->rx_lock);
    return n;
}

void fp_tunnel_session_header(struct fp_tunnel *t, struct fp_session *s, uint8_t *hdr,
                              size_t flen)
{
    pthread_mutex_lock(&t->tx_lock);
    fp_session_header(s, hdr, flen);
    pthread_mutex_unlock(&t->tx_lock);
}

void fp_tunnel_receive(struct fp_tunnel *t, const uint8_t *p, size_t len, double now,
                       struct fp_out *out, struct fp_session **hit)
{
    uint32_t sid;
    *hit = NULL;
    if (t->udp) {
        /* RFC 3931 §4.1.2.1; version checked before the T bit, as the kernel does. */
        if (len < 8) {
            fp_tunnel_drop(t, FP_DROP_TOO_SHORT);
            return;
        }
        unsigned flags = (unsigned)p[0] << 8 | p[1];
        if ((flags & FP_UDP_VERSION_MASK) != FP_L2TP_VERSION_3) {
            fp_tunnel_drop(t, FP_DROP_BAD_VERSION);
            return;
        }
        if (flags & FP_UDP_FLAG_T) {
            queue_control(t, p, len); /* for the daemon: HELLO (proto/liveness.py) */
            fp_tunnel_drop(t, FP_DROP_CONTROL_MESSAGE);
            return;
        }
        sid = fp_be32(p + 4);
    } else {
        if (len < 4) {
            ip_drop(t, FP_DROP_TOO_SHORT, 0);
            return;
        }
        sid = fp_be32(p);
        /* RFC 3931 §4.1.1.2: session ID 0 introduces a control message. */
        if (sid == 0) {
            if (!t->own || fp_own_counter(t->own, t->tunnel_id, 0, 0, NULL) == t->tunnel_id)
                queue_control(t, p, len);
            ip_drop(t, FP_DROP_CONTROL_MESSAGE, 0);
            return;
        }
    }
    struct fp_session *s = fp_tunnel_lookup(t, sid);
    if (!s) {
        if (t->udp)
            fp_tunnel_drop(t, FP_DROP_UNKNOWN_SESSION);
        else
            ip_drop(t, FP_DROP_UNKNOWN_SESSION, sid);
        return;
    }
    *hit = s;
    fp_session_receive(s, p, len, now, out);
}

void fp_tunnel_receive_foreign(struct fp_tunnel *t, const uint8_t *p, size_t len, int family,
                               const uint8_t *host)
{
    if (t->udp || !t->own) {
        fp_tunnel_drop(t, FP_DROP_WRONG_SOURCE);
        return;
    }
    uint32_t sid = len >= 4 ? fp_be32(p) : 0;
    if (fp_own_counter(t->own, t->tunnel_id, sid, family, host) == t->tunnel_id)
        fp_tunnel_drop(t, FP_DROP_WRONG_SOURCE);
}
