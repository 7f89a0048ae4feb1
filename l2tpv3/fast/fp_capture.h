/* `l2tpv3 capture` in the engine: the C twin of io/capture.py (which says the rules).
 * A tunnel with a capture running has a struct fp_capture (t->cap, set and cleared
 * under both tunnel locks, read by each thread under its own): two buffers of
 * FP_CAPTURE_HALF_BYTES, records appended to one under c->lock while the daemon takes
 * the other; a record that does not fit is lost and counted. */
#ifndef L2TPV3_FP_CAPTURE_H
#define L2TPV3_FP_CAPTURE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "fp_session.h" /* fp_be32, fp_shared.h */

struct fp_tunnel;
struct fp_session;

struct fp_capture {
    pthread_mutex_t lock;
    uint8_t *buf[2];
    size_t used; /* in buf[cur] */
    int cur;
    uint32_t session_id; /* 0: every session's packets */
    volatile uint64_t counts[FP_NCAPCOUNTERS]; /* CAPTURE_COUNTERS: records, lost */
};

/* 0, or -1 (out of memory, or a capture runs already: errno EBUSY). */
int fp_capture_start(struct fp_tunnel *t, uint32_t session_id);
void fp_capture_stop(struct fp_tunnel *t);
/* The records since the last call: *out points at them until the next call. */
size_t fp_capture_take(struct fp_tunnel *t, const uint8_t **out, uint64_t *lost);
void fp_capture_add(struct fp_capture *c, int dir, uint32_t sid, int drop, const uint8_t *p,
                    size_t len);
/* From the daemon's thread (liveness probes, control messages): under tx_lock. */
void fp_capture_push(struct fp_tunnel *t, int dir, uint32_t sid, const uint8_t *p, size_t len);

/* The session ID a datagram's header names, 0 if too short (io/capture.py). */
static inline uint32_t fp_capture_sid(const uint8_t *p, size_t len, int udp)
{
    if (udp) return len >= 8 ? fp_be32(p + 4) : 0;
    return len >= 4 ? fp_be32(p) : 0;
}

struct fp_out;
/* fp_tunnel_receive / fp_tunnel_receive_foreign, recording the datagram with the drop
 * reason it was counted under (a stranger's only if this tunnel counted it). */
void fp_capture_receive(struct fp_tunnel *t, struct fp_capture *cap, const uint8_t *p, size_t len,
                        double now, struct fp_out *out, struct fp_session **hit);
void fp_capture_receive_foreign(struct fp_tunnel *t, struct fp_capture *cap, const uint8_t *p,
                                size_t len, int family, const uint8_t *host);

/* The counters of CAPTURE_DROP_REASONS in its order (io/capture.py drop_snapshot). */
void fp_capture_snapshot(const struct fp_tunnel *t, const struct fp_session *s, uint64_t *out);
/* 1 + the index of the first that moved, or 0. */
int fp_capture_code(const uint64_t *before, const uint64_t *after);

#endif
