/* See fp_capture.h. */
#define _GNU_SOURCE
#include "fp_capture.h"
#include "fp_tunnel.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

_Static_assert(FP_CAPTURE_HDR_LEN == 20, "the record header of io/capture.py");
_Static_assert(FP_NCAPDROPS == FP_NTDROPS + 5, "CAPTURE_DROP_REASONS in counters.py");

int fp_capture_start(struct fp_tunnel *t, uint32_t session_id)
{
    if (t->cap) {
        errno = EBUSY;
        return -1;
    }
    struct fp_capture *c = calloc(1, sizeof(*c));
    if (!c) return -1;
    c->buf[0] = malloc(FP_CAPTURE_HALF_BYTES);
    c->buf[1] = malloc(FP_CAPTURE_HALF_BYTES);
    if (!c->buf[0] || !c->buf[1]) {
        free(c->buf[0]);
        free(c->buf[1]);
        free(c);
        errno = ENOMEM;
        return -1;
    }
    c->session_id = session_id;
    pthread_mutex_init(&c->lock, NULL);
    fp_tunnel_lock(t);
    t->cap = c;
    fp_tunnel_unlock(t);
    return 0;
}

void fp_capture_stop(struct fp_tunnel *t)
{
    fp_tunnel_lock(t);
    struct fp_capture *c = t->cap;
    t->cap = NULL;
    fp_tunnel_unlock(t);
    if (!c) return;
    pthread_mutex_destroy(&c->lock);
    free(c->buf[0]);
    free(c->buf[1]);
    free(c);
}

size_t fp_capture_take(struct fp_tunnel *t, const uint8_t **out, uint64_t *lost)
{
    struct fp_capture *c = t->cap;
    *out = NULL;
    *lost = 0;
    if (!c) return 0;
    pthread_mutex_lock(&c->lock);
    int old = c->cur;
    size_t n = c->used;
    c->cur = !old;
    c->used = 0;
    *lost = c->counts[FP_CAPTURE_LOST];
    pthread_mutex_unlock(&c->lock);
    /* The threads now write to the other buffer; this one is ours until the next take
     * (one caller: the daemon's loop). */
    *out = c->buf[old];
    return n;
}

void fp_capture_add(struct fp_capture *c, int dir, uint32_t sid, int drop, const uint8_t *p,
                    size_t len)
{
    if (c->session_id && sid != c->session_id) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    uint32_t n32 = (uint32_t)len;
    uint8_t hdr[FP_CAPTURE_HDR_LEN] = { 0 };
    /* "<QIIBBH": little-endian, as struct.Struct in io/capture.py */
    for (int i = 0; i < 8; i++) hdr[i] = (uint8_t)(ns >> (8 * i));
    for (int i = 0; i < 4; i++) hdr[8 + i] = (uint8_t)(sid >> (8 * i));
    for (int i = 0; i < 4; i++) hdr[12 + i] = (uint8_t)(n32 >> (8 * i));
    hdr[16] = (uint8_t)dir;
    hdr[17] = (uint8_t)drop;
    size_t size = FP_CAPTURE_HDR_LEN + len;
    pthread_mutex_lock(&c->lock);
    if (c->used + size > FP_CAPTURE_HALF_BYTES) {
        c->counts[FP_CAPTURE_LOST]++;
    } else {
        c->counts[FP_CAPTURE_RECORDS]++;
        uint8_t *dst = c->buf[c->cur] + c->used;
        memcpy(dst, hdr, FP_CAPTURE_HDR_LEN);
        memcpy(dst + FP_CAPTURE_HDR_LEN, p, len);
        c->used += size;
    }
    pthread_mutex_unlock(&c->lock);
}

void fp_capture_push(struct fp_tunnel *t, int dir, uint32_t sid, const uint8_t *p, size_t len)
{
    pthread_mutex_lock(&t->tx_lock);
    if (t->cap) fp_capture_add(t->cap, dir, sid, 0, p, len);
    pthread_mutex_unlock(&t->tx_lock);
}

void fp_capture_snapshot(const struct fp_tunnel *t, const struct fp_session *s, uint64_t *out)
{
    for (int i = 0; i < FP_NTDROPS; i++) out[i] = t->drops[i];
    uint64_t *o = out + FP_NTDROPS;
    if (!s) {
        memset(o, 0, 5 * sizeof(*o));
        return;
    }
    o[0] = s->c[FP_RX_COOKIE_DISCARDS];
    o[1] = s->c[FP_RX_SEQ_DISCARDS];
    o[2] = s->drops[FP_FRAME_TOO_SHORT];
    o[3] = s->drops[FP_FRAME_TOO_LONG];
    o[4] = s->c[FP_RX_ERRORS];
}

int fp_capture_code(const uint64_t *before, const uint64_t *after)
{
    for (int i = 0; i < FP_NCAPDROPS; i++)
        if (before[i] != after[i]) return i + 1;
    return 0;
}

void fp_capture_receive(struct fp_tunnel *t, struct fp_capture *cap, const uint8_t *p, size_t len,
                        double now, struct fp_out *out, struct fp_session **hit)
{
    uint64_t before[FP_NCAPDROPS], after[FP_NCAPDROPS];
    uint32_t sid = fp_capture_sid(p, len, t->udp);
    const struct fp_session *s = fp_tunnel_lookup(t, sid);
    fp_capture_snapshot(t, s, before);
    fp_tunnel_receive(t, p, len, now, out, hit);
    fp_capture_snapshot(t, s, after);
    fp_capture_add(cap, FP_CAPTURE_IN, sid, fp_capture_code(before, after), p, len);
}

void fp_capture_receive_foreign(struct fp_tunnel *t, struct fp_capture *cap, const uint8_t *p,
                                size_t len, int family, const uint8_t *host)
{
    uint64_t before = t->drops[FP_DROP_WRONG_SOURCE];
    fp_tunnel_receive_foreign(t, p, len, family, host);
    if (t->drops[FP_DROP_WRONG_SOURCE] != before)
        fp_capture_add(cap, FP_CAPTURE_IN, fp_capture_sid(p, len, t->udp), FP_CAP_WRONG_SOURCE + 1,
                       p, len);
}
