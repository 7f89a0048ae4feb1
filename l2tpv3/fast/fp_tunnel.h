/* One tunnel's receive demultiplexer: the C mirror of proto/tunnel.py. Sessions are kept
 * in a hash table by session ID; the engine's threads and the Python caller share it
 * under the tunnel's two locks (rx_lock for receiving, tx_lock for sending). */
#ifndef L2TPV3_FP_TUNNEL_H
#define L2TPV3_FP_TUNNEL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "fp_ownership.h"
#include "fp_session.h"
#include "fp_vlan.h"

struct fp_engine;
struct fp_capture;

struct fp_tunnel {
    int udp;
    uint32_t tunnel_id;
    /* IP encap: who owns the session IDs and peers this tunnel's socket also sees
     * (the struct of the _fastpath.IpOwnership the tunnel was given), or NULL. */
    struct fp_ownership *own;
    struct fp_session **buckets;
    size_t nbuckets, nsessions;
    long queued; /* packets held by all sessions' sequencers */
    volatile uint64_t c[FP_NCOUNTERS];
    uint64_t retired[FP_NCOUNTERS];
    volatile uint64_t drops[FP_NTDROPS];
    /* Trunk TAPs the engine reads and demuxes by VID (fp_vlan.h), under tx_lock;
     * their sessions write to the trunk's fd but are not polled themselves. */
    struct fp_trunk *trunks[FP_MAX_TRUNKS];
    pthread_mutex_t rx_lock, tx_lock;
    struct fp_engine *engine;
    /* `l2tpv3 capture` (fp_capture.h): NULL unless one runs; set under both locks. */
    struct fp_capture *cap;
    /* Control messages from the peer, for the daemon (proto/tunnel.py take_control),
     * under rx_lock; ctl_new tells the engine to signal its notify fd. */
    uint8_t ctl[FP_CONTROL_QUEUE_SLOTS][FP_CONTROL_MAX_LEN];
    uint16_t ctl_len[FP_CONTROL_QUEUE_SLOTS];
    int nctl, ctl_new;
};

int fp_tunnel_init(struct fp_tunnel *t, int udp, uint32_t tunnel_id, struct fp_ownership *own);
void fp_tunnel_clear(struct fp_tunnel *t);
/* Both take both locks. add: -1 on ENOMEM. remove: retires the counters. */
int fp_tunnel_add(struct fp_tunnel *t, struct fp_session *s);
void fp_tunnel_remove(struct fp_tunnel *t, struct fp_session *s);
void fp_tunnel_drop(struct fp_tunnel *t, int reason);
/* Handle one datagram from the peer (maybe dropped); *hit gets the session or NULL. Over
 * IP a drop is counted unless the ownership says another tunnel on the listener counts
 * it (proto/api.py IpOwnershipAPI); a known session never asks. */
void fp_tunnel_receive(struct fp_tunnel *t, const uint8_t *p, size_t len, double now,
                       struct fp_out *out, struct fp_session **hit);
/* One from host (family 4 or 6, 16 bytes), not the peer: wrong_source, or over IP left
 * to the tunnel the ownership names (proto/tunnel.py receive_foreign). */
void fp_tunnel_receive_foreign(struct fp_tunnel *t, const uint8_t *p, size_t len, int family,
                               const uint8_t *host);
/* Copy out and forget the queued control messages (takes rx_lock); returns how many. */
int fp_tunnel_take_control(struct fp_tunnel *t, uint8_t (*out)[FP_CONTROL_MAX_LEN],
                           uint16_t *lens, int max);
/* fp_session_header under tx_lock: a frame the daemon sends while the engine runs. */
void fp_tunnel_session_header(struct fp_tunnel *t, struct fp_session *s, uint8_t *hdr,
                              size_t flen);
/* Both locks, rx first: sessions, TAPs and the engine change only under both. */
void fp_tunnel_lock(struct fp_tunnel *t);
void fp_tunnel_unlock(struct fp_tunnel *t);

static inline size_t fp_bucket(uint32_t sid, size_t n)
{
    return (size_t)((sid * 2654435761u) >> 7) & (n - 1);
}

/* The session with this ID, or NULL; under the lock of the direction that asks. */
static inline struct fp_session *fp_tunnel_lookup(const struct fp_tunnel *t, uint32_t sid)
{
    struct fp_session *s = t->buckets[fp_bucket(sid, t->nbuckets)];
    while (s && s->session_id != sid) s = s->hnext;
    return s;
}

#endif
