/* See fp_session.h. The protocol logic mirrors the pure-Python reference line by line;
 * comments there say why each rule exists (kernel net/l2tp, RFC 3931, RFC 4719). */
#include "fp_session.h"
#include "fp_mss.h"
#include "fp_vlan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S_BIT FP_L2SPEC_S_BIT
#define SEQ_MASK FP_SEQ_MASK
#define NO_SEQ (-1)

static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

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

static void deliver_clamped(struct fp_session *s, const uint8_t *frame, size_t n,
                            struct fp_out *out);

/* Session._to_trunk: pop pushes the tag (in a copy), otherwise the frame must be ours. */
static void to_trunk(struct fp_session *s, const uint8_t *frame, size_t n, struct fp_out *out)
{
    if (!s->vlan) {
        out->fn(out->ctx, s, frame, n);
        return;
    }
    if (!s->vlan_pop) {
        if (fp_vlan_outer_vid(frame, n) != s->vlan) {
            s->drops[FP_VLAN_MISMATCH]++;
            return;
        }
        out->fn(out->ctx, s, frame, n);
        return;
    }
    uint8_t small[2048];
    uint8_t *copy = n + FP_VLAN_HLEN <= sizeof(small) ? small : malloc(n + FP_VLAN_HLEN);
    if (!copy) {
        s->drops[FP_TAP_WRITE_FAILED]++;
        return;
    }
    fp_vlan_push(copy, frame, n, s->vlan);
    out->fn(out->ctx, s, copy, n + FP_VLAN_HLEN);
    if (copy != small) free(copy);
}

int fp_session_untag(const struct fp_session *s, uint8_t *frame, size_t len)
{
    if (!s->vlan_pop || fp_vlan_outer_vid(frame, len) != s->vlan) return 0;
    memmove(frame + FP_VLAN_HLEN, frame, 12);
    return FP_VLAN_HLEN;
}

void fp_session_set_vlan(struct fp_session *s, int vid, int pop)
{
    s->vlan = vid;
    s->vlan_pop = vid && pop;
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
    if (s->mss_setting) {
        deliver_clamped(s, frame, n, out);
        return;
    }
    to_trunk(s, frame, n, out);
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

/* RxSequencer._old_run: the kernel's nr_oos / nr_oos_count rule (l2tp_recv_data_seq),
 * applied to the packets behind nr that l2tp_seq_check_rx_window drops uncounted. 1 if
 * this packet takes the run past nr_oos_count_max + 1, or is packet 0: resynchronise. */
static int old_run(struct fp_session *s, uint32_t ns)
{
    if (s->old_count && ns == ((s->old_ns + 1) & SEQ_MASK))
        s->old_count++;
    else
        s->old_count = 1;
    s->old_ns = ns;
    /* Packet 0: the peer started again (sequence.py, "Recovery"). */
    return ns == 0 || s->old_count > FP_NR_OOS_COUNT_MAX + 1;
}

/* RxSequencer._resync: everything held expires now, by the policy's own rule, then nr
 * follows the run (reorder_skip in l2tp_recv_dequeue) and its packet is delivered. */
static void resync(struct fp_session *s, const uint8_t *f, size_t n, uint32_t ns,
                   struct fp_out *out)
{
    if (s->qhead) {
        if (s->rfc)
            rfc_release(s, INFINITY, out);
        else
            k_dequeue(s, INFINITY, out);
    }
    s->old_count = 0;
    s->skip = 0;
    s->nr = (ns + 1) & SEQ_MASK;
    deliver(s, f, n, out);
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
        if (old_run(s, ns))
            resync(s, f, n, ns, out);
        else
            rfc_discard(s);
        return;
    }
    s->old_count = 0;
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
        /* l2tp_seq_check_rx_window: outside, rx_errors only; ours: unless it makes a
         * run long enough to resynchronise on. */
        if (old_run(s, ns))
            resync(s, f, n, ns, out);
        else
            s->c[FP_RX_ERRORS]++;
        return;
    }
    s->old_count = 0;
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
        /* Kernel: the run rule. Ours too: packet 0, a peer that started again. */
        if (s->nr_oos_count > FP_NR_OOS_COUNT_MAX || ns == 0) s->skip = 1;
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
    s->last_rx = now;
    int has_ns = 0;
    uint32_t ns = 0;
    if (s->l2spec_off >= 0) {
        uint32_t word = fp_be32(p + s->l2spec_off);
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
    /* liveness arp: the reply to our probe, addressed to our own MAC. */
    if (s->arp_watch && n >= 22 && memcmp(f, s->arp_mac, 6) == 0 &&
        (f[12] << 8 | f[13]) == FP_ETH_P_ARP && (f[20] << 8 | f[21]) == FP_ARPOP_REPLY)
        s->last_arp = now;
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

void fp_session_set_mss(struct fp_session *s, int setting)
{
    unsigned a, b;
    s->mss_setting = setting;
    fp_mss_limits(setting, s->max_frame - FP_RX_FRAME_SLACK, &a, &b);
    s->mss4 = a;
    s->mss6 = b;
}

void fp_session_set_mtu(struct fp_session *s, int mtu)
{
    unsigned a, b;
    s->max_frame = mtu + FP_RX_FRAME_SLACK;
    fp_mss_limits(s->mss_setting, mtu, &a, &b);
    s->mss4 = a;
    s->mss6 = b;
}

int fp_session_clamp(struct fp_session *s, uint8_t *frame, size_t len, int partial,
                     size_t csum_start, size_t csum_offset)
{
    if (!s->mss_setting ||
        !fp_mss_clamp(frame, len, s->mss4, s->mss6, partial, csum_start, csum_offset))
        return 0;
    s->features[FP_MSS_CLAMPED]++;
    return 1;
}

/* Session._clamp_rx: the frame may be a read-only buffer (the sans-I/O binding hands in
 * Python bytes), so a SYN to clamp is changed in a copy. */
static void deliver_clamped(struct fp_session *s, const uint8_t *frame, size_t n,
                            struct fp_out *out)
{
    struct fp_mss_hit h;
    uint8_t small[2048];
    if (!fp_mss_find(frame, n, s->mss4, s->mss6, 0, 0, 0, &h)) {
        to_trunk(s, frame, n, out);
        return;
    }
    uint8_t *copy = n <= sizeof(small) ? small : malloc(n);
    if (!copy) {
        /* Out of memory: the frame goes on unclamped rather than being lost. */
        to_trunk(s, frame, n, out);
        return;
    }
    memcpy(copy, frame, n);
    fp_mss_apply(copy, &h);
    s->features[FP_MSS_CLAMPED]++;
    to_trunk(s, copy, n, out);
    if (copy != small) free(copy);
}
