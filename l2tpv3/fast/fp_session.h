/* One session and its receive sequencer: the C mirror of proto/session.py and
 * proto/sequence.py (which stay the reference; comments there say why each rule
 * exists). Nothing here calls Python or does I/O; time comes in as `now`.
 *
 * Every number shared with Python, and the counter and drop indexes, come from
 * fp_shared.h, which cgen.py generates from constants.py and proto/counters.py at
 * build time; _fastpath.pyx maps the indexes back to the names.
 */
#ifndef L2TPV3_FP_SESSION_H
#define L2TPV3_FP_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "fp_shared.h" /* generated from the Python: constants, counter and drop indexes */

static inline uint32_t fp_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

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
    int old_count; /* the run of consecutive numbers behind nr: length, 0 for none */
    double timeout, hold;
    uint32_t nr, nr_oos, old_ns;
    struct fp_entry *qhead, *qtail;
    size_t qlen;
    long *queued_total; /* the tunnel's count of held packets, or NULL */
    volatile uint64_t c[FP_NCOUNTERS];
    volatile uint64_t drops[FP_NSDROPS];
    /* engine */
    int tap_fd;
    int vnet; /* the TAP was opened with IFF_VNET_HDR and offloads */
    int ifindex; /* the TAP's, 0 if unknown: its MTU follows RTM_NEWLINK (fp_engine.c) */
    struct fp_session *hnext;
    /* MSS clamping (fp_mss.h): setting 0 off, -1 auto, else the MSS; limits follow the MTU */
    int mss_setting;
    volatile unsigned mss4, mss6;
    volatile uint64_t features[FP_NFEATURES];
    /* liveness (proto/liveness.py): `now` of the last packet past the cookie check and
     * of the last ARP reply to arp_mac (when arp_watch), read by the daemon's timer */
    volatile double last_rx, last_arp;
    uint8_t arp_mac[6];
    volatile int arp_watch;
    /* per-VLAN sessions (fp_vlan.h): the VID on the trunk (0: none), pop the tag */
    int vlan, vlan_pop;
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
/* Deliver what the packet makes deliverable; one that cannot be held (out of memory)
 * is counted in rx_errors. */
void fp_session_receive(struct fp_session *s, const uint8_t *p, size_t len, double now,
                        struct fp_out *out);
void fp_session_poll(struct fp_session *s, double now, struct fp_out *out);
/* 1 and *deadline if something is held. */
int fp_session_next_deadline(const struct fp_session *s, double *deadline);

/* MSS clamping: set the setting (0 off, -1 auto, else the MSS) after fp_session_init;
 * set_mtu keeps max_frame and the auto limits in step with the TAP's MTU. */
void fp_session_set_mss(struct fp_session *s, int setting);
void fp_session_set_mtu(struct fp_session *s, int mtu);
/* Clamp a frame read from the TAP in place, before fp_session_header; partial: a
 * NEEDS_CSUM frame (virtio-net header). Counts mss_clamped; 1 if lowered. Received
 * frames are clamped in delivery (a copy), so every receive path is covered. */
int fp_session_clamp(struct fp_session *s, uint8_t *frame, size_t len, int partial,
                     size_t csum_start, size_t csum_offset);

/* Per-VLAN sessions (proto/vlan.py): set after fp_session_init; vid 0 is no trunk.
 * Received frames then reach the trunk tagged (pop: an 802.1Q tag pushed; otherwise
 * only frames carrying vid, the rest vlan_mismatch drops). */
void fp_session_set_vlan(struct fp_session *s, int vid, int pop);
/* Session.untag: a frame read from the trunk, in place; with pop and the session's VID
 * as its outer tag, the MAC addresses move 4 bytes on and the frame starts at
 * frame + 4 (returned: 4), else 0. */
int fp_session_untag(const struct fp_session *s, uint8_t *frame, size_t len);

#endif
