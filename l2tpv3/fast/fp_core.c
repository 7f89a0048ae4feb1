/* See fp_core.h. The protocol logic mirrors the pure-Python reference line by line;
 * comments there say why each rule exists (kernel net/l2tp, RFC 3931, RFC 4719). */
#define _GNU_SOURCE
#include "fp_core.h"
#include "offload.h"

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define S_BIT FP_L2SPEC_S_BIT
#define SEQ_MASK FP_SEQ_MASK
#define NO_SEQ (-1)

static inline uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

double fp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- session ------------------------------------------------------------------- */

int fp_session_init(struct fp_session *s, uint32_t session_id, const struct fp_layout *lay,
                    int send_seq, int recv_seq, int policy, double reorder_timeout)
{
    memset(s, 0, sizeof(*s));
    s->tap_fd = -1;
    /* Checked, not derived: the header is written into HEADROOM before each frame, and
     * receive reads the cookie and the sublayer only from packets of rx_hlen bytes. */
    if (lay->tx_prefix_len < 0 || (size_t)lay->tx_prefix_len > sizeof(s->prefix) ||
        lay->tx_hlen != lay->tx_prefix_len + (lay->tx_l2spec ? FP_L2SPEC_DEFAULT_LEN : 0) ||
        lay->tx_hlen > FP_HEADROOM || lay->rx_cookie_len < 0 ||
        (size_t)lay->rx_cookie_len > sizeof(s->cookie) || lay->rx_cookie_off < 0 ||
        lay->rx_cookie_off + lay->rx_cookie_len > lay->rx_hlen ||
        lay->rx_l2spec_off + FP_L2SPEC_DEFAULT_LEN > lay->rx_hlen)
        return -1;
    s->session_id = session_id;
    memcpy(s->prefix, lay->tx_prefix, (size_t)lay->tx_prefix_len);
    s->prefix_len = lay->tx_prefix_len;
    s->l2spec = lay->tx_l2spec;
    s->tx_hlen = lay->tx_hlen;
    memcpy(s->cookie, lay->rx_cookie, (size_t)lay->rx_cookie_len);
    s->cookie_len = lay->rx_cookie_len;
    s->cookie_off = lay->rx_cookie_off;
    s->l2spec_off = lay->rx_l2spec_off < 0 ? -1 : lay->rx_l2spec_off;
    s->rx_hlen = lay->rx_hlen;
    s->send_seq = send_seq;
    s->recv_seq = recv_seq;
    s->max_frame = FP_MAX_MTU + FP_RX_FRAME_SLACK;
    s->rfc = policy == FP_POLICY_RFC3931;
    s->timeout = reorder_timeout;
    s->reorder = reorder_timeout > 0.0;
    s->hold = s->reorder ? reorder_timeout : FP_DEFAULT_REORDER_HOLD;
    s->skip = 1;
    return 0;
}

static void q_unlink(struct fp_session *s, struct fp_entry *e)
{
    if (e->prev) e->prev->next = e->next; else s->qhead = e->next;
    if (e->next) e->next->prev = e->prev; else s->qtail = e->prev;
    s->qlen--;
    if (s->queued_total) (*s->queued_total)--;
}

void fp_session_clear(struct fp_session *s)
{
    while (s->qhead) {
        struct fp_entry *e = s->qhead;
        q_unlink(s, e);
        free(e);
    }
}

void fp_session_header(struct fp_session *s, uint8_t *hdr, size_t flen)
{
    memcpy(hdr, s->prefix, (size_t)s->prefix_len);
    if (s->l2spec) {
        uint32_t word = 0;
        if (s->send_seq) {
            word = S_BIT | s->ns;
            s->ns = (s->ns + 1) & SEQ_MASK;
        }
        put_be32(hdr + s->prefix_len, word);
    }
    s->c[FP_TX_PACKETS]++;
    s->c[FP_TX_BYTES] += (uint64_t)s->tx_hlen + flen;
}

void fp_session_tx_failed(struct fp_session *s, size_t pktlen)
{
    s->c[FP_TX_PACKETS]--;
    s->c[FP_TX_BYTES] -= pktlen;
    s->c[FP_TX_ERRORS]++;
}

/* Session._deliver for one frame, then the frame checks of l2tp_eth_dev_recv. */
static void deliver(struct fp_session *s, const uint8_t *frame, size_t n, struct fp_out *out)
{
    s->c[FP_RX_PACKETS]++;
    s->c[FP_RX_BYTES] += n + (size_t)s->rx_hlen;
    if (n < FP_ETH_HLEN) {
        s->drops[FP_FRAME_TOO_SHORT]++;
        return;
    }
    if (n > (size_t)s->max_frame) {
        s->drops[FP_FRAME_TOO_LONG]++;
        return;
    }
    out->fn(out->ctx, s, frame, n);
}

static struct fp_entry *entry_new(struct fp_session *s, int32_t ns, double expires,
                                  const uint8_t *data, size_t len)
{
    struct fp_entry *e = malloc(sizeof(*e) + len);
    if (!e) {
        /* Cannot hold it: counted as a receive error, like any packet not delivered. */
        s->c[FP_RX_ERRORS]++;
        return NULL;
    }
    e->ns = ns;
    e->expires = expires;
    e->len = len;
    memcpy(e->data, data, len);
    e->next = e->prev = NULL;
    return e;
}

static void q_append(struct fp_session *s, struct fp_entry *e)
{
    e->prev = s->qtail;
    e->next = NULL;
    if (s->qtail) s->qtail->next = e; else s->qhead = e;
    s->qtail = e;
    s->qlen++;
    if (s->queued_total) (*s->queued_total)++;
}

static void q_insert_before(struct fp_session *s, struct fp_entry *at, struct fp_entry *e)
{
    e->next = at;
    e->prev = at->prev;
    if (at->prev) at->prev->next = e; else s->qhead = e;
    at->prev = e;
    s->qlen++;
    if (s->queued_total) (*s->queued_total)++;
}

static void pop_deliver(struct fp_session *s, struct fp_entry *e, struct fp_out *out)
{
    q_unlink(s, e);
    deliver(s, e->data, e->len, out);
    free(e);
}

/* RxSequencer._dequeue */
static void k_dequeue(struct fp_session *s, double now, struct fp_out *out)
{
    while (s->qhead) {
        struct fp_entry *e = s->qhead;
        if (now > e->expires) {
            q_unlink(s, e);
            free(e);
            s->c[FP_RX_SEQ_DISCARDS]++;
            s->c[FP_RX_ERRORS]++;
            s->skip = 1;
            continue;
        }
        if (e->ns != NO_SEQ) {
            if (s->skip) {
                s->skip = 0;
                s->nr = (uint32_t)e->ns;
            }
            if ((uint32_t)e->ns != s->nr) break;
            s->nr = ((uint32_t)e->ns + 1) & SEQ_MASK;
        }
        pop_deliver(s, e, out);
    }
}

/* RxSequencer._insert */
static void k_insert(struct fp_session *s, struct fp_entry *e)
{
    uint32_t dist = ((uint32_t)e->ns - s->nr) & SEQ_MASK;
    for (struct fp_entry *at = s->qhead; at; at = at->next) {
        if (at->ns == NO_SEQ) continue;
        uint32_t ed = ((uint32_t)at->ns - s->nr) & SEQ_MASK;
        if (dist < ed && ed < FP_KERNEL_NR_WINDOW) {
            q_insert_before(s, at, e);
            s->c[FP_RX_OOS_PACKETS]++;
            return;
        }
    }
    q_append(s, e);
}

static void rfc_discard(struct fp_session *s)
{
    s->c[FP_RX_SEQ_DISCARDS]++;
    s->c[FP_RX_ERRORS]++;
}

/* RxSequencer._release_rfc */
static void rfc_release(struct fp_session *s, double now, struct fp_out *out)
{
    struct fp_entry *last = NULL;
    for (struct fp_entry *e = s->qhead; e; e = e->next)
        if (now > e->expires) last = e;
    if (last) {
        for (;;) {
            struct fp_entry *e = s->qhead;
            int done = e == last;
            if (e->ns != NO_SEQ) s->nr = ((uint32_t)e->ns + 1) & SEQ_MASK;
            pop_deliver(s, e, out);
            if (done) break;
        }
    }
    while (s->qhead) {
        struct fp_entry *e = s->qhead;
        if (e->ns != NO_SEQ) {
            if ((uint32_t)e->ns != s->nr) break;
            s->nr = ((uint32_t)e->ns + 1) & SEQ_MASK;
        }
        pop_deliver(s, e, out);
    }
}

/* RxSequencer._push_rfc */
static void rfc_push(struct fp_session *s, const uint8_t *f, size_t n, int has_ns, uint32_t ns,
                     double now, struct fp_out *out)
{
    struct fp_entry *e;
    if (!has_ns) {
        if (!s->qhead) {
            deliver(s, f, n, out);
            return;
        }
        if ((e = entry_new(s, NO_SEQ, now + s->timeout, f, n))) q_append(s, e);
        rfc_release(s, now, out);
        return;
    }
    ns &= SEQ_MASK;
    if (s->skip) {
        s->skip = 0;
        s->nr = ns;
    }
    uint32_t dist = (ns - s->nr) & SEQ_MASK;
    if (dist >= FP_RFC_SEQ_HALF - 1) {
        rfc_discard(s);
        return;
    }
    if (!s->reorder) {
        s->nr = (ns + 1) & SEQ_MASK;
        deliver(s, f, n, out);
        return;
    }
    if (!s->qhead) {
        if (dist == 0) {
            s->nr = (ns + 1) & SEQ_MASK;
            deliver(s, f, n, out);
            return;
        }
        if ((e = entry_new(s, (int32_t)ns, now + s->timeout, f, n))) q_append(s, e);
        return;
    }
    struct fp_entry *at;
    for (at = s->qhead; at; at = at->next) {
        if (at->ns == NO_SEQ) continue;
        uint32_t ed = ((uint32_t)at->ns - s->nr) & SEQ_MASK;
        if (ed == dist) {
            rfc_discard(s);
            return;
        }
        if (ed > dist) break;
    }
    if (!(e = entry_new(s, (int32_t)ns, now + s->timeout, f, n))) {
        rfc_release(s, now, out);
        return;
    }
    if (at) {
        q_insert_before(s, at, e);
        s->c[FP_RX_OOS_PACKETS]++;
    } else {
        q_append(s, e);
    }
    rfc_release(s, now, out);
}

/* RxSequencer.push */
static void seq_push(struct fp_session *s, const uint8_t *f, size_t n, int has_ns, uint32_t ns,
                     double now, struct fp_out *out)
{
    struct fp_entry *e;
    if (s->rfc) {
        rfc_push(s, f, n, has_ns, ns, now, out);
        return;
    }
    if (!has_ns) {
        if (!s->qhead) {
            deliver(s, f, n, out);
            return;
        }
        if ((e = entry_new(s, NO_SEQ, now + s->hold, f, n))) q_append(s, e);
        k_dequeue(s, now, out);
        return;
    }
    ns &= SEQ_MASK;
    if (((ns - s->nr) & SEQ_MASK) >= FP_KERNEL_NR_WINDOW) {
        s->c[FP_RX_ERRORS]++;
        return;
    }
    if (s->reorder) {
        if (s->qhead) {
            if ((e = entry_new(s, (int32_t)ns, now + s->hold, f, n))) k_insert(s, e);
            k_dequeue(s, now, out);
            return;
        }
        if (s->skip) {
            s->skip = 0;
            s->nr = ns;
        }
        if (ns != s->nr) {
            if ((e = entry_new(s, (int32_t)ns, now + s->hold, f, n))) q_append(s, e);
            return;
        }
        s->nr = (ns + 1) & SEQ_MASK;
        deliver(s, f, n, out);
        return;
    }
    if (ns != s->nr) {
        if (ns == ((s->nr_oos + 1) & SEQ_MASK))
            s->nr_oos_count++;
        else
            s->nr_oos_count = 0;
        s->nr_oos = ns;
        if (s->nr_oos_count > FP_NR_OOS_COUNT_MAX) s->skip = 1;
        if (!s->skip) {
            s->c[FP_RX_SEQ_DISCARDS]++;
            s->c[FP_RX_ERRORS]++;
            return;
        }
    }
    s->skip = 0;
    s->nr = (ns + 1) & SEQ_MASK;
    deliver(s, f, n, out);
}

/* Session.receive */
void fp_session_receive(struct fp_session *s, const uint8_t *p, size_t len, double now,
                        struct fp_out *out)
{
    if (len < (size_t)s->rx_hlen) {
        s->c[FP_RX_ERRORS]++;
        return;
    }
    /* RFC 3931 §4.1: a cookie that does not match is discarded. */
    if (s->cookie_len && memcmp(p + s->cookie_off, s->cookie, (size_t)s->cookie_len) != 0) {
        s->c[FP_RX_COOKIE_DISCARDS]++;
        s->c[FP_RX_ERRORS]++;
        return;
    }
    int has_ns = 0;
    uint32_t ns = 0;
    if (s->l2spec_off >= 0) {
        uint32_t word = be32(p + s->l2spec_off);
        if (word & S_BIT) {
            has_ns = 1;
            ns = word & SEQ_MASK;
        }
    }
    if (has_ns) {
        if (!s->lns_mode && !s->send_seq) s->send_seq = 1;
    } else {
        if (s->recv_seq) {
            s->c[FP_RX_SEQ_DISCARDS]++;
            s->c[FP_RX_ERRORS]++;
            return;
        }
        if (!s->lns_mode && s->send_seq) {
            s->send_seq = 0;
        } else if (s->send_seq) {
            s->c[FP_RX_SEQ_DISCARDS]++;
            s->c[FP_RX_ERRORS]++;
            return;
        }
    }
    const uint8_t *f = p + s->rx_hlen;
    size_t n = len - (size_t)s->rx_hlen;
    if (!has_ns && !s->qhead) {
        deliver(s, f, n, out);
        return;
    }
    seq_push(s, f, n, has_ns, ns, now, out);
}

void fp_session_poll(struct fp_session *s, double now, struct fp_out *out)
{
    if (!s->qhead) return;
    if (s->rfc)
        rfc_release(s, now, out);
    else
        k_dequeue(s, now, out);
}

int fp_session_next_deadline(const struct fp_session *s, double *deadline)
{
    if (!s->qhead) return 0;
    double d = s->qhead->expires;
    if (s->rfc)
        for (struct fp_entry *e = s->qhead; e; e = e->next)
            if (e->expires < d) d = e->expires;
    *deadline = nextafter(d, INFINITY);
    return 1;
}

/* ---- tunnel -------------------------------------------------------------------- */

static inline size_t bucket(uint32_t sid, size_t n)
{
    return (size_t)((sid * 2654435761u) >> 7) & (n - 1);
}

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
    /* Sessions may outlive their tunnel: they must not count into it any more. */
    for (size_t i = 0; i < t->nbuckets; i++)
        for (struct fp_session *s = t->buckets[i]; s; s = s->hnext) s->queued_total = NULL;
    free(t->buckets);
    t->buckets = NULL;
    pthread_mutex_destroy(&t->rx_lock);
    pthread_mutex_destroy(&t->tx_lock);
}

struct fp_session *fp_tunnel_lookup(const struct fp_tunnel *t, uint32_t sid)
{
    struct fp_session *s = t->buckets[bucket(sid, t->nbuckets)];
    while (s && s->session_id != sid) s = s->hnext;
    return s;
}

static void lock_both(struct fp_tunnel *t)
{
    pthread_mutex_lock(&t->rx_lock);
    pthread_mutex_lock(&t->tx_lock);
}

static void unlock_both(struct fp_tunnel *t)
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
            size_t k = bucket(s->session_id, n);
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
    lock_both(t);
    if (t->nsessions >= t->nbuckets && grow(t) < 0) {
        rc = -1;
    } else {
        size_t k = bucket(s->session_id, t->nbuckets);
        s->hnext = t->buckets[k];
        t->buckets[k] = s;
        t->nsessions++;
        s->queued_total = &t->queued;
        t->queued += (long)s->qlen;
    }
    unlock_both(t);
    return rc;
}

void fp_tunnel_remove(struct fp_tunnel *t, struct fp_session *s)
{
    lock_both(t);
    struct fp_session **pp = &t->buckets[bucket(s->session_id, t->nbuckets)];
    while (*pp && *pp != s) pp = &(*pp)->hnext;
    if (*pp) {
        *pp = s->hnext;
        s->hnext = NULL;
        t->nsessions--;
        t->queued -= (long)s->qlen;
        s->queued_total = NULL;
        for (int i = 0; i < FP_NCOUNTERS; i++) t->retired[i] += s->c[i];
    }
    unlock_both(t);
}

void fp_tunnel_drop(struct fp_tunnel *t, int reason)
{
    t->drops[reason]++;
    t->c[FP_RX_INVALID]++;
}

void fp_tunnel_receive(struct fp_tunnel *t, const uint8_t *p, size_t len, double now,
                       struct fp_out *out, struct fp_session **hit)
{
    uint32_t sid;
    *hit = NULL;
    if (t->udp) {
        /* RFC 3931 §4.1.2.1; version checked before the T bit, as the kernel does. */
        if (len < 8) goto too_short;
        unsigned flags = (unsigned)p[0] << 8 | p[1];
        if ((flags & FP_UDP_VERSION_MASK) != FP_L2TP_VERSION_3) {
            fp_tunnel_drop(t, FP_DROP_BAD_VERSION);
            return;
        }
        if (flags & FP_UDP_FLAG_T) goto control;
        sid = be32(p + 4);
    } else {
        if (len < 4) goto too_short;
        sid = be32(p);
        /* RFC 3931 §4.1.1.2: session ID 0 introduces a control message. */
        if (sid == 0) goto control;
    }
    struct fp_session *s = fp_tunnel_lookup(t, sid);
    if (!s) {
        /* Over IP every raw socket on our address sees every tunnel's datagrams: one for
         * another tunnel on the same listener is that tunnel's copy, not ours to count. */
        if (!t->udp && t->own && fp_own_is_other_copy(t->own, t->tunnel_id, sid)) return;
        fp_tunnel_drop(t, FP_DROP_UNKNOWN_SESSION);
        return;
    }
    *hit = s;
    fp_session_receive(s, p, len, now, out);
    return;
too_short:
    fp_tunnel_drop(t, FP_DROP_TOO_SHORT);
    return;
control:
    fp_tunnel_drop(t, FP_DROP_CONTROL_MESSAGE);
}

/* ---- engine -------------------------------------------------------------------- */

/* Room in front of every frame for the L2TP header and a virtio-net header (HEADROOM,
 * constants.py); frames are read right after it and the header is written in place,
 * so sending copies nothing. */
#define HEADROOM FP_HEADROOM
#define BUFSZ (65536 + HEADROOM)
#define WAKE_KEY UINT64_MAX
#define MAX_GONE 256
#define VNET_HLEN FP_VNET_HDR_LEN /* the TAP is set to this size */
_Static_assert(sizeof(struct virtio_net_hdr) == VNET_HLEN, "VNET_HDR_LEN in constants.py");
/* Segments of one TCP super-frame, each with headroom for the L2TP header. */
#define SEGBUF (2u << 20)
#define MAX_SEGS FP_MAX_SEGS
/* Socket options: the values of constants.py, checked against the system's. */
#ifdef UDP_SEGMENT
_Static_assert(UDP_SEGMENT == FP_UDP_SEGMENT, "UDP_SEGMENT in constants.py");
#endif
#ifdef UDP_GRO
_Static_assert(UDP_GRO == FP_UDP_GRO, "UDP_GRO in constants.py");
#endif
_Static_assert(SO_NO_CHECK == FP_SO_NO_CHECK, "SO_NO_CHECK in constants.py");
_Static_assert(SO_RCVBUFFORCE == FP_SO_RCVBUFFORCE, "SO_RCVBUFFORCE in constants.py");
_Static_assert(SO_SNDBUFFORCE == FP_SO_SNDBUFFORCE, "SO_SNDBUFFORCE in constants.py");
_Static_assert(UDP_NO_CHECK6_TX == FP_UDP_NO_CHECK6_TX, "UDP_NO_CHECK6_TX in constants.py");
_Static_assert(UDP_NO_CHECK6_RX == FP_UDP_NO_CHECK6_RX, "UDP_NO_CHECK6_RX in constants.py");
_Static_assert(IP_MTU_DISCOVER == FP_IP_MTU_DISCOVER, "IP_MTU_DISCOVER in constants.py");
_Static_assert(IPV6_MTU_DISCOVER == FP_IPV6_MTU_DISCOVER, "IPV6_MTU_DISCOVER in constants.py");
/* UDP GSO: at most 64 segments (UDP_MAX_SEGMENTS on older kernels) and a 64 KiB
 * datagram before it is split. */
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 60000
#define CMSG_BUF 64

struct fp_engine {
    struct fp_engine_opts o;
    struct fp_tunnel *t;
    int wake_fd, notify_fd, epfd;
    /* UDP: a second socket on the same local address and port, connected to the peer,
     * that the send thread uses (o.sock otherwise). See connect_tx_socket. */
    int conn_fd, tx_fd;
    /* UDP GSO refused datagrams of this size and larger (EMSGSIZE: they need IP
     * fragments), 0 if none; tried again after gso_skip super-frames. */
    size_t gso_too_big;
    int gso_skip;
    volatile int stopping;
    int tx_stalled;
    pthread_t rx, tx;
    int rx_started, tx_started;
    /* tx */
    uint8_t *tx_bufs;
    struct mmsghdr *tx_msgs;
    struct iovec *tx_iov;
    struct fp_session **tx_sess;
    /* rx */
    uint8_t *rx_bufs;
    struct mmsghdr *rx_msgs;
    struct iovec *rx_iov;
    struct sockaddr_storage *rx_addr;
    /* offloads */
    uint8_t *segbuf;
    size_t *seglens;
    struct iovec *seg_iov;
    struct mmsghdr *seg_msgs;
    struct fp_session **seg_sess;
    uint8_t *rx_cmsg;
    struct l2o_gro *gro;
    struct fp_session *gro_session;
    struct fp_engine_stats st;
    /* sessions whose TAP vanished, for the asyncio loop */
    pthread_mutex_t gone_lock;
    uint32_t gone[MAX_GONE];
    int ngone;
};

static void signal_fd(int fd)
{
    uint64_t one = 1;
    ssize_t r = write(fd, &one, sizeof(one));
    (void)r;
}

static int is_peer(const struct fp_engine *e, const struct sockaddr_storage *a)
{
    if (a->ss_family != e->o.peer.ss_family) return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)&e->o.peer;
        return x->sin_addr.s_addr == y->sin_addr.s_addr && x->sin_port == y->sin_port;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)&e->o.peer;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

static int gro_emit(void *ctx, const uint8_t *buf, size_t len)
{
    struct fp_engine *e = ctx;
    struct fp_session *s = e->gro_session;
    const struct virtio_net_hdr *vh = (const void *)buf;
    if (vh->gso_type != VIRTIO_NET_HDR_GSO_NONE) e->st.gro_superframes_out++;
    if (s->tap_fd < 0 || write(s->tap_fd, buf, len) < 0) s->drops[FP_TAP_WRITE_FAILED]++;
    return 0;
}

static void gro_flush(struct fp_engine *e)
{
    if (e->gro_session) l2o_gro_flush(e->gro, gro_emit, e);
    e->gro_session = NULL;
}

static void tap_write(void *ctx, struct fp_session *s, const uint8_t *frame, size_t len)
{
    struct fp_engine *e = ctx;
    if (s->vnet && s->tap_fd >= 0) {
        /* Coalesce consecutive TCP segments of one session into super-frames; the
         * context holds one session's flows at a time. */
        if (e->gro_session != s) {
            gro_flush(e);
            e->gro_session = s;
        }
        if (l2o_gro_add(e->gro, frame, len, gro_emit, e) != 0) s->drops[FP_TAP_WRITE_FAILED]++;
        return;
    }
    if (s->tap_fd < 0 || write(s->tap_fd, frame, len) < 0)
        s->drops[FP_TAP_WRITE_FAILED]++;
}

/* The gso_size a UDP_GRO socket reported for a coalesced datagram, or 0. */
static size_t gro_size(struct msghdr *m)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c))
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == FP_UDP_GRO) {
            int v;
            memcpy(&v, CMSG_DATA(c), sizeof(v));
            return v > 0 ? (size_t)v : 0;
        }
    return 0;
}

/* Read one batch from fd; the number of datagrams (0 on error or nothing). */
static int rx_recv(struct fp_engine *e, int fd)
{
    for (int i = 0; i < e->o.batch; i++) {
        e->rx_msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
        e->rx_msgs[i].msg_hdr.msg_flags = 0;
        if (e->st.udp_gro) {
            e->rx_msgs[i].msg_hdr.msg_control = e->rx_cmsg + (size_t)i * CMSG_BUF;
            e->rx_msgs[i].msg_hdr.msg_controllen = CMSG_BUF;
        }
    }
    int n = recvmmsg(fd, e->rx_msgs, (unsigned)e->o.batch, MSG_DONTWAIT, NULL);
    return n < 0 ? 0 : n;
}

/* Handle n datagrams read by rx_recv. Called with rx_lock held. */
static void rx_handle(struct fp_engine *e, int n, double now, struct fp_out *out)
{
    struct fp_tunnel *t = e->t;
    for (int i = 0; i < n; i++) {
        const struct sockaddr_storage *src = &e->rx_addr[i];
        uint8_t *p = e->rx_bufs + (size_t)i * BUFSZ + HEADROOM;
        size_t len = e->rx_msgs[i].msg_len;
        if (e->rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC) len = 0;
        if (!is_peer(e, src)) {
            /* Over IP, one from the peer of another tunnel on our listener is its copy. */
            if (t->udp || !t->own || !fp_own_is_other_peer_sa(t->own, t->tunnel_id, src))
                fp_tunnel_drop(t, FP_DROP_WRONG_SOURCE);
            continue;
        }
        if (e->o.strip_ip) {
            /* IPv4 raw sockets deliver the IP header: skip it by its IHL. */
            if (len < FP_IPV4_HLEN) continue;
            size_t ihl = (size_t)(p[0] & 0x0F) * 4;
            if (ihl > len) ihl = len;
            p += ihl;
            len -= ihl;
        }
        /* UDP_GRO: several datagrams of gso_size bytes (the last maybe shorter)
         * arrive as one; take them apart again. */
        size_t seg = e->st.udp_gro ? gro_size(&e->rx_msgs[i].msg_hdr) : 0;
        if (seg) e->st.gro_datagrams_in++;
        if (!seg || seg >= len) seg = len;
        size_t off = 0;
        do {
            size_t k = len - off < seg ? len - off : seg;
            struct fp_session *s;
            fp_tunnel_receive(t, p + off, k, now, out, &s);
            off += k;
        } while (off < len);
    }
}

static void clear_error(int fd)
{
    /* A queued ICMP error: clear it, or poll would return at once for ever. */
    int soerr;
    socklen_t sl = sizeof(soerr);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
}

static void *rx_main(void *arg)
{
    struct fp_engine *e = arg;
    struct fp_tunnel *t = e->t;
    struct fp_out out = { tap_write, e };
    /* The peer's datagrams arrive on the connected socket (it matches them better);
     * anyone else's on the tunnel socket, where they are counted as wrong_source. */
    struct pollfd pfd[3] = { { e->o.sock, POLLIN, 0 }, { e->wake_fd, POLLIN, 0 },
                             { e->conn_fd, POLLIN, 0 } };
    nfds_t npfd = e->conn_fd >= 0 ? 3 : 2;
    while (!e->stopping) {
        int timeout = -1;
        if (t->queued > 0) {
            double now = fp_now(), next = INFINITY, d;
            pthread_mutex_lock(&t->rx_lock);
            for (size_t i = 0; i < t->nbuckets; i++)
                for (struct fp_session *s = t->buckets[i]; s; s = s->hnext)
                    if (fp_session_next_deadline(s, &d) && d < next) next = d;
            pthread_mutex_unlock(&t->rx_lock);
            if (next < INFINITY) timeout = next <= now ? 0 : (int)ceil((next - now) * 1000.0);
        }
        int pr = poll(pfd, npfd, timeout);
        if (e->stopping) break;
        if (pr < 0 && errno != EINTR) break;
        if (pr > 0 && (pfd[0].revents & POLLERR)) clear_error(e->o.sock);
        if (pr > 0 && npfd == 3 && (pfd[2].revents & POLLERR)) clear_error(e->conn_fd);
        int n = pr > 0 && (pfd[0].revents & POLLIN) ? rx_recv(e, e->o.sock) : 0;
        double now = fp_now();
        if (n) {
            pthread_mutex_lock(&t->rx_lock);
            rx_handle(e, n, now, &out);
            gro_flush(e);
            pthread_mutex_unlock(&t->rx_lock);
        }
        n = pr > 0 && npfd == 3 && (pfd[2].revents & POLLIN) ? rx_recv(e, e->conn_fd) : 0;
        if (n) now = fp_now();
        pthread_mutex_lock(&t->rx_lock);
        rx_handle(e, n, now, &out);
        if (t->queued > 0) {
            for (size_t i = 0; i < t->nbuckets; i++)
                for (struct fp_session *s = t->buckets[i]; s; s = s->hnext) {
                    double d;
                    if (fp_session_next_deadline(s, &d) && d <= now) fp_session_poll(s, now, &out);
                }
        }
        gro_flush(e);
        pthread_mutex_unlock(&t->rx_lock);
    }
    return NULL;
}

/* Wait until the socket takes more, or stop. 0 writable, -1 stopping or timed out. */
static int wait_writable(struct fp_engine *e)
{
    /* At most one second per batch: the send lock is held meanwhile, and adding or
     * deleting a session waits for it. */
    if (e->tx_stalled) return -1;
    struct pollfd pfd[2] = { { e->tx_fd, POLLOUT, 0 }, { e->wake_fd, POLLIN, 0 } };
    int r = poll(pfd, 2, 1000);
    if (e->stopping || r <= 0 || !(pfd[0].revents & POLLOUT)) {
        e->tx_stalled = 1;
        return -1;
    }
    return 0;
}

/* A connected UDP socket reports an ICMP error that arrived earlier (port unreachable
 * while the peer was down) on its next send, which then fails; the unconnected socket
 * the kernel's counters are modelled on never sees those. So a failed send on it is
 * tried once more: a stale error is gone then, a real one (no route) fails again. */
static int retry_connected(struct fp_engine *e, int *retried)
{
    if (e->conn_fd < 0 || *retried) return 0;
    *retried = 1;
    return 1;
}

/* Send datagrams [done, cnt) of one batch (messages, their iovecs and sessions). */
static void send_batch(struct fp_engine *e, struct mmsghdr *msgs, const struct iovec *iov,
                       struct fp_session *const *sess, int done, int cnt)
{
    int retried = 0;
    while (done < cnt) {
        int r = sendmmsg(e->tx_fd, msgs + done, (unsigned)(cnt - done), MSG_DONTWAIT);
        if (r > 0) {
            done += r;
            retried = 0;
            continue;
        }
        if ((errno == EAGAIN || errno == ENOBUFS) && wait_writable(e) == 0) continue;
        if (retry_connected(e, &retried)) continue;
        retried = 0;
        /* The kernel counts a failed transmit in tx_errors (l2tp_xmit_skb). */
        fp_session_tx_failed(sess[done], iov[done].iov_len);
        done++;
    }
}

static void tx_flush(struct fp_engine *e, int cnt)
{
    send_batch(e, e->tx_msgs, e->tx_iov, e->tx_sess, 0, cnt);
}

/* Send segments [0, n) of seg_iov with UDP GSO: one sendmsg per run of equal-sized
 * datagrams. Returns how many were sent (the rest go through sendmmsg). */
static int gso_send(struct fp_engine *e, int n)
{
    int done = 0, retried = 0;
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } u;
    while (done < n) {
        size_t size = e->seg_iov[done].iov_len, total = 0;
        int k = done;
        /* Equal sizes; only the last of a run may be shorter. */
        while (k < n && k - done < GSO_MAX_SEGS && total + e->seg_iov[k].iov_len <= GSO_MAX_BYTES &&
               e->seg_iov[k].iov_len <= size) {
            total += e->seg_iov[k].iov_len;
            k++;
            if (e->seg_iov[k - 1].iov_len < size) break;
        }
        if (k - done < 2) return done;
        if (e->gso_too_big && size >= e->gso_too_big) {
            if (--e->gso_skip > 0) return done;
            e->gso_too_big = 0;
        }
        struct msghdr m = { 0 };
        if (e->conn_fd < 0) {
            m.msg_name = &e->o.peer;
            m.msg_namelen = e->o.peer_len;
        }
        m.msg_iov = e->seg_iov + done;
        m.msg_iovlen = (size_t)(k - done);
        m.msg_control = u.buf;
        m.msg_controllen = sizeof(u.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = FP_UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t gs = (uint16_t)size;
        memcpy(CMSG_DATA(c), &gs, sizeof(gs));
        ssize_t r = sendmsg(e->tx_fd, &m, MSG_DONTWAIT);
        if (r < 0) {
            if ((errno == EAGAIN || errno == ENOBUFS) && wait_writable(e) == 0) continue;
            if (retry_connected(e, &retried)) continue;
            if (errno == EINVAL || errno == EIO || errno == EOPNOTSUPP || errno == ENOPROTOOPT)
                e->st.udp_gso = 0; /* this kernel or socket cannot: fall back for good */
            if (errno == EMSGSIZE) {
                /* Datagrams above the path MTU (fragmented, as the kernel's tunnel
                 * socket allows): GSO cannot take them, and the failed call has already
                 * copied the whole run into the kernel. Do not try that size each time;
                 * try again now and then, in case the MTU grew. */
                e->gso_too_big = size;
                e->gso_skip = 4096;
            }
            return done;
        }
        e->st.gso_sends++;
        done = k;
        retried = 0;
    }
    return done;
}

/* Send the segments of one super-frame, now: their buffer is reused for the next. */
static void seg_flush(struct fp_engine *e, int n)
{
    int done = e->st.udp_gso ? gso_send(e, n) : 0;
    send_batch(e, e->seg_msgs, e->seg_iov, e->seg_sess, done, n);
}

/* One frame read with a virtio-net header: complete its checksum, or cut a TCP
 * super-frame into frames that fit the session's MTU and send those at once.
 * Returns 1 if the frame is ready to go as it is, 0 if it was consumed. */
static int tx_offload(struct fp_engine *e, struct fp_session *s, const struct virtio_net_hdr *vh,
                      uint8_t *frame, size_t len)
{
    if (vh->gso_type == VIRTIO_NET_HDR_GSO_NONE) {
        if (l2o_complete_csum(vh, frame, len) == 0) return 1;
        s->c[FP_TX_ERRORS]++;
        return 0;
    }
    /* The device's MTU plus its Ethernet header: FP_RX_FRAME_SLACK minus the VLAN tag. */
    size_t max_frame = (size_t)s->max_frame - FP_RX_FRAME_SLACK + FP_ETH_HLEN;
    size_t stride = (max_frame + HEADROOM + 63) & ~(size_t)63;
    int max_segs = (int)(SEGBUF / stride);
    if (max_segs > MAX_SEGS) max_segs = MAX_SEGS;
    uint8_t *out = e->segbuf + HEADROOM;
    int n = l2o_segment(vh, frame, len, max_frame, out, stride, e->seglens, max_segs);
    if (n <= 0) {
        /* Malformed or needing too many segments: the kernel would fail the transmit. */
        s->c[FP_TX_ERRORS]++;
        return 0;
    }
    e->st.superframes_in++;
    e->st.segments_out += (uint64_t)n;
    for (int i = 0; i < n; i++) {
        uint8_t *f = out + (size_t)i * stride;
        uint8_t *hdr = f - s->tx_hlen;
        fp_session_header(s, hdr, e->seglens[i]);
        e->seg_iov[i].iov_base = hdr;
        e->seg_iov[i].iov_len = e->seglens[i] + (size_t)s->tx_hlen;
        e->seg_sess[i] = s;
    }
    seg_flush(e, n);
    return 0;
}

static void push_gone(struct fp_engine *e, struct fp_session *s)
{
    epoll_ctl(e->epfd, EPOLL_CTL_DEL, s->tap_fd, NULL);
    pthread_mutex_lock(&e->gone_lock);
    if (e->ngone < MAX_GONE) e->gone[e->ngone++] = s->session_id;
    pthread_mutex_unlock(&e->gone_lock);
    signal_fd(e->notify_fd);
}

static void *tx_main(void *arg)
{
    struct fp_engine *e = arg;
    struct fp_tunnel *t = e->t;
    int batch = e->o.batch;
    struct epoll_event evs[64];
    while (!e->stopping) {
        int n = epoll_wait(e->epfd, evs, 64, -1);
        if (e->stopping) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        int cnt = 0;
        e->tx_stalled = 0;
        pthread_mutex_lock(&t->tx_lock);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == WAKE_KEY) continue;
            struct fp_session *s = fp_tunnel_lookup(t, (uint32_t)evs[i].data.u64);
            if (!s || s->tap_fd < 0) continue;
            /* At most one batch per session per wakeup, so one busy TAP cannot starve
             * the others (epoll is level-triggered: it comes back). */
            for (int k = 0; k < batch; k++) {
                if (cnt == batch) {
                    tx_flush(e, cnt);
                    cnt = 0;
                }
                uint8_t *frame = e->tx_bufs + (size_t)cnt * BUFSZ + HEADROOM;
                int vlen = s->vnet ? VNET_HLEN : 0;
                ssize_t r = read(s->tap_fd, frame - vlen, BUFSZ - HEADROOM + (size_t)vlen);
                if (r < 0) {
                    /* `ip link del` on the device: the daemon deletes the session. */
                    if (errno == EBADFD) push_gone(e, s);
                    break;
                }
                if (vlen) {
                    struct virtio_net_hdr vh;
                    if (r < vlen) continue;
                    memcpy(&vh, frame - vlen, sizeof(vh));
                    r -= vlen;
                    if (vh.gso_type != VIRTIO_NET_HDR_GSO_NONE && cnt) {
                        /* Its segments go out at once: what was read before goes first,
                         * so the wire keeps the TAP's order (and sequence numbers). */
                        tx_flush(e, cnt);
                        cnt = 0;
                    }
                    if (!tx_offload(e, s, &vh, frame, (size_t)r)) continue;
                }
                uint8_t *hdr = frame - s->tx_hlen;
                fp_session_header(s, hdr, (size_t)r);
                e->tx_iov[cnt].iov_base = hdr;
                e->tx_iov[cnt].iov_len = (size_t)r + (size_t)s->tx_hlen;
                e->tx_sess[cnt] = s;
                cnt++;
            }
        }
        if (cnt) tx_flush(e, cnt);
        pthread_mutex_unlock(&t->tx_lock);
    }
    return NULL;
}

/* Copy an int socket option from the tunnel socket; 0 or -1. */
static int copy_opt(int from, int to, int level, int name)
{
    int v;
    socklen_t l = sizeof(v);
    if (getsockopt(from, level, name, &v, &l) < 0) return -1;
    return setsockopt(to, level, name, &v, sizeof(v));
}

/* Sending on the unconnected tunnel socket makes the kernel look up the route for every
 * datagram (a quarter of the send thread's time for small packets). A second socket,
 * bound to the same address and port (SO_REUSEADDR on both) and connected to the peer,
 * sends the same datagrams from the same address with the route cached. The peer's
 * datagrams then arrive on it (a connected socket is the better match); the receive
 * thread reads both, so others still reach the tunnel socket and count as wrong_source.
 * Any failure leaves conn_fd at -1: everything goes through the tunnel socket. */
static void connect_tx_socket(struct fp_engine *e)
{
    struct sockaddr_storage local;
    socklen_t ll = sizeof(local);
    int one = 1, fd = -1, v6 = e->o.family == 6;
    if (getsockname(e->o.sock, (struct sockaddr *)&local, &ll) < 0) return;
    if (setsockopt(e->o.sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) return;
    fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_UDP);
    if (fd < 0) return;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) goto fail;
    /* Everything underlay.open_socket sets, so the datagrams are the same. */
    if (v6) {
        if (copy_opt(e->o.sock, fd, IPPROTO_IPV6, IPV6_V6ONLY) < 0 ||
            copy_opt(e->o.sock, fd, IPPROTO_IPV6, FP_IPV6_MTU_DISCOVER) < 0 ||
            copy_opt(e->o.sock, fd, IPPROTO_UDP, FP_UDP_NO_CHECK6_TX) < 0 ||
            copy_opt(e->o.sock, fd, IPPROTO_UDP, FP_UDP_NO_CHECK6_RX) < 0)
            goto fail;
    } else {
        if (copy_opt(e->o.sock, fd, IPPROTO_IP, FP_IP_MTU_DISCOVER) < 0 ||
            copy_opt(e->o.sock, fd, SOL_SOCKET, FP_SO_NO_CHECK) < 0)
            goto fail;
    }
    /* getsockopt reports the doubled size the kernel keeps; setting halves it back. */
    int size;
    socklen_t sl = sizeof(size);
    if (getsockopt(e->o.sock, SOL_SOCKET, SO_RCVBUF, &size, &sl) == 0) {
        size /= 2;
        if (setsockopt(fd, SOL_SOCKET, FP_SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    }
    sl = sizeof(size);
    if (getsockopt(e->o.sock, SOL_SOCKET, SO_SNDBUF, &size, &sl) == 0) {
        size /= 2;
        if (setsockopt(fd, SOL_SOCKET, FP_SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    }
    if (e->st.udp_gro && setsockopt(fd, SOL_UDP, FP_UDP_GRO, &one, sizeof(one)) < 0) goto fail;
    if (bind(fd, (struct sockaddr *)&local, ll) < 0) goto fail;
    if (connect(fd, (const struct sockaddr *)&e->o.peer, e->o.peer_len) < 0) goto fail;
    e->conn_fd = e->tx_fd = fd;
    return;
fail:
    close(fd);
}

static void engine_free(struct fp_engine *e)
{
    if (e->conn_fd >= 0) close(e->conn_fd);
    if (e->wake_fd >= 0) close(e->wake_fd);
    if (e->notify_fd >= 0) close(e->notify_fd);
    if (e->epfd >= 0) close(e->epfd);
    free(e->tx_bufs);
    free(e->tx_msgs);
    free(e->tx_iov);
    free(e->tx_sess);
    free(e->rx_bufs);
    free(e->rx_msgs);
    free(e->rx_iov);
    free(e->rx_addr);
    free(e->segbuf);
    free(e->seglens);
    free(e->seg_iov);
    free(e->seg_msgs);
    free(e->seg_sess);
    free(e->rx_cmsg);
    free(e->gro);
    pthread_mutex_destroy(&e->gone_lock);
    free(e);
}

int fp_engine_start(struct fp_tunnel *t, const struct fp_engine_opts *o, char *err, size_t errlen)
{
    struct fp_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    e->o = *o;
    e->t = t;
    e->wake_fd = e->notify_fd = e->epfd = e->conn_fd = -1;
    e->tx_fd = o->sock;
    pthread_mutex_init(&e->gone_lock, NULL);
    size_t b = (size_t)o->batch;
    e->tx_bufs = malloc(b * BUFSZ);
    e->tx_msgs = calloc(b, sizeof(*e->tx_msgs));
    e->tx_iov = calloc(b, sizeof(*e->tx_iov));
    e->tx_sess = calloc(b, sizeof(*e->tx_sess));
    e->rx_bufs = malloc(b * BUFSZ);
    e->rx_msgs = calloc(b, sizeof(*e->rx_msgs));
    e->rx_iov = calloc(b, sizeof(*e->rx_iov));
    e->rx_addr = calloc(b, sizeof(*e->rx_addr));
    e->segbuf = malloc(SEGBUF);
    e->seglens = calloc(MAX_SEGS, sizeof(*e->seglens));
    e->seg_iov = calloc(MAX_SEGS, sizeof(*e->seg_iov));
    e->seg_msgs = calloc(MAX_SEGS, sizeof(*e->seg_msgs));
    e->seg_sess = calloc(MAX_SEGS, sizeof(*e->seg_sess));
    e->rx_cmsg = calloc(b, CMSG_BUF);
    e->gro = malloc(sizeof(*e->gro));
    e->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    e->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!e->tx_bufs || !e->tx_msgs || !e->tx_iov || !e->tx_sess || !e->rx_bufs ||
        !e->rx_msgs || !e->rx_iov || !e->rx_addr || !e->segbuf || !e->seglens || !e->seg_iov ||
        !e->seg_msgs || !e->seg_sess || !e->rx_cmsg || !e->gro || e->wake_fd < 0 || e->notify_fd < 0 ||
        e->epfd < 0) {
        snprintf(err, errlen, "cannot allocate the engine: %s", strerror(errno));
        engine_free(e);
        return -1;
    }
    for (size_t i = 0; i < b; i++) {
        e->tx_msgs[i].msg_hdr.msg_name = &e->o.peer;
        e->tx_msgs[i].msg_hdr.msg_namelen = o->peer_len;
        e->tx_msgs[i].msg_hdr.msg_iov = &e->tx_iov[i];
        e->tx_msgs[i].msg_hdr.msg_iovlen = 1;
        e->rx_iov[i].iov_base = e->rx_bufs + i * BUFSZ + HEADROOM;
        e->rx_iov[i].iov_len = BUFSZ - HEADROOM;
        e->rx_msgs[i].msg_hdr.msg_name = &e->rx_addr[i];
        e->rx_msgs[i].msg_hdr.msg_iov = &e->rx_iov[i];
        e->rx_msgs[i].msg_hdr.msg_iovlen = 1;
    }
    for (size_t i = 0; i < MAX_SEGS; i++) {
        e->seg_msgs[i].msg_hdr.msg_name = &e->o.peer;
        e->seg_msgs[i].msg_hdr.msg_namelen = o->peer_len;
        e->seg_msgs[i].msg_hdr.msg_iov = &e->seg_iov[i];
        e->seg_msgs[i].msg_hdr.msg_iovlen = 1;
    }
    l2o_gro_init(e->gro, VNET_HLEN);
    e->st.udp_gso = o->udp_gso;
    if (o->udp_gro) {
        int one = 1;
        e->st.udp_gro = setsockopt(o->sock, SOL_UDP, FP_UDP_GRO, &one, sizeof(one)) == 0;
    }
    if (t->udp) connect_tx_socket(e);
    if (e->conn_fd >= 0) {
        /* Connected: no destination per datagram, so the kernel uses the socket's
         * cached route instead of looking one up for each. */
        for (size_t i = 0; i < b; i++) {
            e->tx_msgs[i].msg_hdr.msg_name = NULL;
            e->tx_msgs[i].msg_hdr.msg_namelen = 0;
        }
        for (size_t i = 0; i < MAX_SEGS; i++) {
            e->seg_msgs[i].msg_hdr.msg_name = NULL;
            e->seg_msgs[i].msg_hdr.msg_namelen = 0;
        }
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WAKE_KEY };
    epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->wake_fd, &ev);

    lock_both(t);
    t->engine = e;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (struct fp_session *s = t->buckets[i]; s; s = s->hnext)
            if (s->tap_fd >= 0) {
                struct epoll_event sev = { .events = EPOLLIN, .data.u64 = s->session_id };
                epoll_ctl(e->epfd, EPOLL_CTL_ADD, s->tap_fd, &sev);
            }
    unlock_both(t);

    if (pthread_create(&e->rx, NULL, rx_main, e) == 0) e->rx_started = 1;
    if (e->rx_started && pthread_create(&e->tx, NULL, tx_main, e) == 0) e->tx_started = 1;
    if (!e->tx_started) {
        snprintf(err, errlen, "cannot start the packet threads");
        fp_engine_stop(t);
        return -1;
    }
    return 0;
}

void fp_engine_stop(struct fp_tunnel *t)
{
    struct fp_engine *e = t->engine;
    if (!e) return;
    e->stopping = 1;
    signal_fd(e->wake_fd);
    if (e->rx_started) pthread_join(e->rx, NULL);
    if (e->tx_started) pthread_join(e->tx, NULL);
    lock_both(t);
    t->engine = NULL;
    unlock_both(t);
    engine_free(e);
}

int fp_engine_attach(struct fp_tunnel *t, struct fp_session *s, int tap_fd, int vnet)
{
    int rc = 0;
    lock_both(t);
    s->tap_fd = tap_fd;
    s->vnet = vnet;
    if (t->engine) {
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = s->session_id };
        rc = epoll_ctl(t->engine->epfd, EPOLL_CTL_ADD, tap_fd, &ev);
    }
    unlock_both(t);
    return rc;
}

void fp_engine_detach(struct fp_tunnel *t, struct fp_session *s)
{
    lock_both(t);
    if (t->engine && s->tap_fd >= 0) epoll_ctl(t->engine->epfd, EPOLL_CTL_DEL, s->tap_fd, NULL);
    s->tap_fd = -1;
    unlock_both(t);
}

void fp_engine_get_stats(const struct fp_tunnel *t, struct fp_engine_stats *st)
{
    if (t->engine) *st = t->engine->st; else memset(st, 0, sizeof(*st));
}

int fp_engine_notify_fd(const struct fp_tunnel *t)
{
    return t->engine ? t->engine->notify_fd : -1;
}

int fp_engine_take_gone(struct fp_tunnel *t, uint32_t *out, int max)
{
    struct fp_engine *e = t->engine;
    if (!e) return 0;
    uint64_t v;
    ssize_t r = read(e->notify_fd, &v, sizeof(v));
    (void)r;
    pthread_mutex_lock(&e->gone_lock);
    int n = e->ngone < max ? e->ngone : max;
    memcpy(out, e->gone, (size_t)n * sizeof(*out));
    memmove(e->gone, e->gone + n, (size_t)(e->ngone - n) * sizeof(*out));
    e->ngone -= n;
    pthread_mutex_unlock(&e->gone_lock);
    return n;
}
