/* The Cython fast path's C core: the same session, sequencer and tunnel logic as
 * session.py, sequence.py and tunnel.py (which stay the reference), plus the per-tunnel
 * engine that runs the packet loops in two pthreads without the GIL.
 *
 * Nothing here calls Python. Every number shared with Python, and the counter and drop
 * indexes, come from fp_shared.h, which cgen.py generates from constants.py and
 * proto/counters.py at build time; _fastpath.pyx maps the indexes back to the names.
 */
#ifndef L2TPV3_FP_CORE_H
#define L2TPV3_FP_CORE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "fp_ownership.h"
#include "fp_shared.h" /* generated from the Python: constants, counter and drop indexes */

enum { FP_POLICY_KERNEL = 0, FP_POLICY_RFC3931 = 1 };

struct fp_session;
/* Called for every frame that passed all checks, in order. */
typedef void (*fp_deliver_fn)(void *ctx, struct fp_session *s, const uint8_t *frame, size_t len);

struct fp_out {
    fp_deliver_fn fn;
    void *ctx;
};

struct fp_entry {
    struct fp_entry *next, *prev;
    int32_t ns; /* -1: unsequenced */
    double expires;
    size_t len;
    uint8_t data[];
};

struct fp_session {
    uint32_t session_id;
    uint8_t prefix[16]; /* UDP flags word, peer session ID, our cookie */
    int prefix_len;
    int l2spec;         /* default sublayer on both directions */
    int tx_hlen;
    uint8_t cookie[8];  /* the peer's cookie, expected on receive */
    int cookie_len, cookie_off, l2spec_off, rx_hlen;
    volatile int send_seq, recv_seq, lns_mode;
    uint32_t ns;
    volatile int max_frame;
    /* sequencer (sequence.py RxSequencer) */
    int rfc, reorder, skip, nr_oos_count;
    double timeout, hold;
    uint32_t nr, nr_oos;
    struct fp_entry *qhead, *qtail;
    size_t qlen;
    long *queued_total; /* the tunnel's count of held packets, or NULL */
    volatile uint64_t c[FP_NCOUNTERS];
    volatile uint64_t drops[FP_NSDROPS];
    /* engine */
    int tap_fd;
    int vnet; /* the TAP was opened with IFF_VNET_HDR and offloads */
    struct fp_session *hnext;
};

/* A session's header layout, as proto/layout.py HeaderLayout computes it: the C side
 * takes it as given and derives nothing. Offsets are within the L2TP part of a
 * datagram (the UDP payload, or the IP payload); rx_l2spec_off is -1 without sublayer. */
struct fp_layout {
    const uint8_t *tx_prefix; /* UDP flags word, peer session ID, our cookie */
    int tx_prefix_len;
    int tx_l2spec; /* the default sublayer follows the prefix */
    int tx_hlen;
    const uint8_t *rx_cookie; /* the peer's cookie, expected on receive */
    int rx_cookie_len, rx_cookie_off, rx_l2spec_off, rx_hlen;
};

/* 0, or -1 if the layout does not fit the struct or is inconsistent. */
int fp_session_init(struct fp_session *s, uint32_t session_id, const struct fp_layout *lay,
                    int send_seq, int recv_seq, int policy, double reorder_timeout);
void fp_session_clear(struct fp_session *s);
/* Write the tx header into hdr[0..tx_hlen) for a frame of flen bytes; counts it sent. */
void fp_session_header(struct fp_session *s, uint8_t *hdr, size_t flen);
void fp_session_tx_failed(struct fp_session *s, size_t pktlen);
/* 0, or -1 if a packet could not be held (out of memory: counted as rx_errors). */
void fp_session_receive(struct fp_session *s, const uint8_t *p, size_t len, double now,
                        struct fp_out *out);
void fp_session_poll(struct fp_session *s, double now, struct fp_out *out);
/* 1 and *deadline if something is held. */
int fp_session_next_deadline(const struct fp_session *s, double *deadline);

/* Tunnel */
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
    pthread_mutex_t rx_lock, tx_lock;
    struct fp_engine *engine;
};

int fp_tunnel_init(struct fp_tunnel *t, int udp, uint32_t tunnel_id, struct fp_ownership *own);
void fp_tunnel_clear(struct fp_tunnel *t);
struct fp_session *fp_tunnel_lookup(const struct fp_tunnel *t, uint32_t sid);
/* Both take both locks. add: -1 on ENOMEM. remove: retires the counters. */
int fp_tunnel_add(struct fp_tunnel *t, struct fp_session *s);
void fp_tunnel_remove(struct fp_tunnel *t, struct fp_session *s);
void fp_tunnel_drop(struct fp_tunnel *t, int reason);
/* Handle one datagram (maybe dropped); *hit gets the session or NULL. Over IP an unknown
 * session ID is counted unless the ownership says it is another tunnel's copy. */
void fp_tunnel_receive(struct fp_tunnel *t, const uint8_t *p, size_t len, double now,
                       struct fp_out *out, struct fp_session **hit);

/* Engine: two threads per tunnel. */
struct fp_engine_opts {
    int sock;
    int family; /* 4 or 6 */
    int strip_ip;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    int batch;
    int udp_gso; /* try UDP_SEGMENT (needs UDP checksums on: the kernel refuses GSO without) */
    int udp_gro; /* try UDP_GRO on receive */
};

/* What the engine ended up using, and its offload statistics. */
struct fp_engine_stats {
    int udp_gso, udp_gro;
    uint64_t superframes_in, segments_out, gso_sends, gro_datagrams_in, gro_superframes_out;
};
void fp_engine_get_stats(const struct fp_tunnel *t, struct fp_engine_stats *st);

int fp_engine_start(struct fp_tunnel *t, const struct fp_engine_opts *o, char *err, size_t errlen);
void fp_engine_stop(struct fp_tunnel *t);
int fp_engine_attach(struct fp_tunnel *t, struct fp_session *s, int tap_fd, int vnet);
void fp_engine_detach(struct fp_tunnel *t, struct fp_session *s);
int fp_engine_notify_fd(const struct fp_tunnel *t);
/* Session IDs whose TAP device vanished (EBADFD); returns how many were copied. */
int fp_engine_take_gone(struct fp_tunnel *t, uint32_t *out, int max);

double fp_now(void);

#endif
