/* libFuzzer target: the C receive path (fp_tunnel_receive, the sessions' cookie and
 * sequencing checks and reorder queues, fp_ownership) on the input format of
 * fuzz/python/scenario.py, with the accounting rules of fuzz/python/rxcheck.py:
 *
 *   every copy of a datagram a tunnel receives (fp_tunnel_receive from its peer,
 *   fp_tunnel_receive_foreign from anyone else) grows at most one of: the tunnel's
 *   rx_invalid (and one drop reason; wrong_source if not from its peer), one session's
 *   rx_packets + rx_errors + held (the session fp_tunnel_receive reports); of all the
 *   tunnels that get a copy exactly one counts it, the one the rule of proto/api.py
 *   IpOwnershipAPI names (the tunnel holding the session ID, else the one whose peer
 *   sent it, else the lowest tunnel ID on the listener); frames delivered + frame
 *   drops == rx_packets growth; a poll changes no rx_packets + rx_errors + held.
 *
 * Every datagram sits in a heap block of exactly its size, overwritten after the call
 * (the engine reuses its buffers), and every delivered frame is read in full, so with
 * AddressSanitizer any read out of bounds or of a freed queue entry aborts.
 *
 * Built by fuzz/run.py with clang -fsanitize=fuzzer,address,undefined from the C files of
 * l2tpv3/fast (all of them but Cython's output) and the fp_shared.h that cgen.py
 * generates, so a new C file there needs no change here.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp_ownership.h"
#include "fp_session.h"
#include "fp_tunnel.h"

#define MAX_TUNNELS 3
#define MAX_SESSIONS 4

static const double time_steps[8] = {0.0, 0.001, 0.01, 0.05, 0.2, 0.5, 2.0, 60.0};
static const int cookie_lengths[4] = {0, 4, 8, 8};
static const int reorder_ms[4] = {0, 0, 50, 300};

struct sess_cfg {
    int tindex;
    uint32_t sid;
    uint8_t peer_cookie[8];
    int cookie_len, l2spec, send_seq, recv_seq, policy, lns;
    double timeout;
    struct fp_session *s; /* NULL while toggled off */
};

struct world {
    int ip, v6, ntunnels, nsessions;
    struct fp_ownership own;
    struct fp_tunnel t[MAX_TUNNELS];
    struct sess_cfg sc[MAX_SESSIONS];
    double now;
    /* the frame sink */
    size_t frames;
};

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "INVARIANT: " __VA_ARGS__);                                   \
            fprintf(stderr, "\n");                                                        \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

static void sink(void *ctx, struct fp_session *s, const uint8_t *frame, size_t len)
{
    struct world *w = ctx;
    CHECK(len >= FP_ETH_HLEN && len <= (size_t)s->max_frame, "frame of %zu bytes delivered", len);
    volatile uint8_t x = 0;
    for (size_t i = 0; i < len; i++) x ^= frame[i];
    w->frames++;
}

static uint64_t q_of(const struct fp_session *s)
{
    return s->c[FP_RX_PACKETS] + s->c[FP_RX_ERRORS] + s->qlen;
}

static uint64_t fdrops(const struct fp_session *s)
{
    return s->drops[FP_FRAME_TOO_SHORT] + s->drops[FP_FRAME_TOO_LONG];
}

static void addr(struct world *w, int index, uint8_t *local, uint8_t *peer)
{
    memset(local, 0, 16);
    memset(peer, 0, 16);
    if (w->v6) {
        local[0] = peer[0] = 0xfd;
        local[15] = index < 2 ? 1 : 3;
        peer[15] = (uint8_t)(0x64 + index);
    } else {
        local[0] = peer[0] = 10;
        local[3] = index < 2 ? 1 : 3;
        peer[3] = (uint8_t)(100 + index);
    }
}

static void session_add(struct world *w, struct sess_cfg *c)
{
    struct fp_tunnel *t = &w->t[c->tindex];
    /* the layout as proto/layout.py HeaderLayout.for_session computes it */
    uint8_t prefix[8];
    int plen = 0;
    if (!w->ip) {
        prefix[0] = 0; prefix[1] = 3; prefix[2] = 0; prefix[3] = 0;
        plen = 4;
    }
    prefix[plen++] = (uint8_t)(c->sid >> 24);
    prefix[plen++] = (uint8_t)(c->sid >> 16);
    prefix[plen++] = (uint8_t)(c->sid >> 8);
    prefix[plen++] = (uint8_t)c->sid;
    int cookie_off = (w->ip ? 0 : 4) + 4;
    struct fp_layout lay = {
        .tx_prefix = prefix,
        .tx_prefix_len = plen,
        .tx_l2spec = c->l2spec,
        .tx_hlen = plen + (c->l2spec ? 4 : 0),
        .rx_cookie = c->peer_cookie,
        .rx_cookie_len = c->cookie_len,
        .rx_cookie_off = cookie_off,
        .rx_l2spec_off = c->l2spec ? cookie_off + c->cookie_len : -1,
        .rx_hlen = cookie_off + c->cookie_len + (c->l2spec ? 4 : 0),
    };
    c->s = calloc(1, sizeof(*c->s));
    CHECK(c->s, "out of memory");
    CHECK(fp_session_init(c->s, c->sid, &lay, c->send_seq, c->recv_seq, c->policy,
                          c->timeout) == 0, "fp_session_init refused a layout");
    c->s->lns_mode = c->lns;
    if (w->ip) {
        uint32_t other;
        CHECK(fp_own_claim(&w->own, t->tunnel_id, c->sid, &other) == 0, "claim %u", c->sid);
    }
    CHECK(fp_tunnel_add(t, c->s) == 0, "fp_tunnel_add");
}

static void session_del(struct world *w, struct sess_cfg *c)
{
    fp_tunnel_remove(&w->t[c->tindex], c->s);
    if (w->ip) fp_own_release(&w->own, c->sid);
    fp_session_clear(c->s);
    free(c->s);
    c->s = NULL;
}

/* scenario.py Scenario.source: the index of the tunnel whose peer sent a datagram, or
 * -1 for a stranger; host gets its address. */
static int source_of(struct world *w, uint8_t ctl, uint8_t *host)
{
    int target = ctl & 3, first = target % w->ntunnels, src;
    if (!(ctl & 0x40))
        src = first;
    else if (w->ntunnels == 3 && target != 3)
        src = (first + 2) % 3;
    else
        src = -1;
    uint8_t local[16];
    if (src >= 0) {
        addr(w, src, local, host);
    } else {
        addr(w, 0, local, host);
        if (w->v6) host[15] = 0x99; else host[3] = 99;
    }
    return src;
}

static int listener_eq(struct world *w, int a, int b)
{
    /* tunnels 0 and 1 share the local address; UDP tunnels have a socket each */
    if (!w->ip) return a == b;
    return (a < 2) == (b < 2);
}

static void do_poll(struct world *w)
{
    struct fp_out out = {sink, w};
    for (int i = 0; i < w->nsessions; i++) {
        struct fp_session *s = w->sc[i].s;
        if (!s) continue;
        uint64_t q0 = q_of(s), rx0 = s->c[FP_RX_PACKETS], fd0 = fdrops(s);
        size_t f0 = w->frames;
        fp_session_poll(s, w->now, &out);
        CHECK(q_of(s) == q0, "poll changed rx_packets + rx_errors + held");
        CHECK((w->frames - f0) + (fdrops(s) - fd0) == s->c[FP_RX_PACKETS] - rx0,
              "poll: frames + frame drops != rx_packets growth");
    }
}

static void do_datagram(struct world *w, uint8_t ctl, const uint8_t *data, size_t len)
{
    struct fp_out out = {sink, w};
    int first = (ctl & 3) % w->ntunnels;
    uint8_t host[16];
    int src = source_of(w, ctl, host);
    int ncounted = 0, counter = -1;
    for (int i = 0; i < w->ntunnels; i++) {
        if (!listener_eq(w, first, i)) continue;
        struct fp_tunnel *t = &w->t[i];
        uint8_t *buf = malloc(len ? len : 1);
        CHECK(buf, "out of memory");
        memcpy(buf, data, len);
        uint64_t inv0 = t->c[FP_RX_INVALID], ws0 = t->drops[FP_DROP_WRONG_SOURCE];
        uint64_t q0[MAX_SESSIONS], rx0[MAX_SESSIONS], fd0[MAX_SESSIONS];
        for (int k = 0; k < w->nsessions; k++) {
            struct fp_session *s = w->sc[k].s;
            q0[k] = s ? q_of(s) : 0;
            rx0[k] = s ? s->c[FP_RX_PACKETS] : 0;
            fd0[k] = s ? fdrops(s) : 0;
        }
        size_t f0 = w->frames;
        struct fp_session *hit = NULL;
        if (i == src)
            fp_tunnel_receive(t, buf, len, w->now, &out, &hit);
        else
            fp_tunnel_receive_foreign(t, buf, len, w->v6 ? 6 : 4, host);
        memset(buf, 0xee, len); /* the engine reuses its receive buffer */
        free(buf);
        uint64_t dinv = t->c[FP_RX_INVALID] - inv0;
        uint64_t dsum = 0;
        for (int r = 0; r < FP_NTDROPS; r++) dsum += t->drops[r];
        CHECK(dsum == t->c[FP_RX_INVALID], "sum(drops) != rx_invalid");
        uint64_t dq = 0;
        int grown = -1;
        for (int k = 0; k < w->nsessions; k++) {
            struct fp_session *s = w->sc[k].s;
            if (!s) continue;
            CHECK(q_of(s) >= q0[k], "a session's Q shrank");
            if (q_of(s) != q0[k]) {
                dq += q_of(s) - q0[k];
                grown = k;
            }
        }
        CHECK(dinv + dq <= 1, "tunnel %d: one datagram counted %llu + %llu times", i + 1,
              (unsigned long long)dinv, (unsigned long long)dq);
        if (i != src) {
            CHECK(dq == 0, "tunnel %d: a datagram from another host reached a session", i + 1);
            CHECK(t->drops[FP_DROP_WRONG_SOURCE] - ws0 == dinv,
                  "tunnel %d: a datagram from another host counted but not as wrong_source",
                  i + 1);
        }
        if (dinv) {
            CHECK(!hit && w->frames == f0, "a dropped datagram reached a session");
        } else if (dq) {
            struct fp_session *s = w->sc[grown].s;
            CHECK(hit == s, "the session that counted is not the one returned");
            CHECK(w->sc[grown].tindex == i, "a session of another tunnel counted");
            CHECK((w->frames - f0) + (fdrops(s) - fd0[grown]) == s->c[FP_RX_PACKETS] - rx0[grown],
                  "frames + frame drops != rx_packets growth");
        } else {
            CHECK(!hit && w->frames == f0, "an ignored datagram reached a session");
        }
        if (dinv || dq) {
            ncounted++;
            counter = i;
        }
    }
    /* The rule, stated again from the world: the tunnel on the listener holding the
     * session ID, else the one whose peer sent it, else the lowest tunnel ID there. */
    int want = first;
    if (w->ip) {
        uint32_t sid = len >= 4 ? (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 |
                                      (uint32_t)data[2] << 8 | data[3]
                                : 0;
        int owner = -1;
        for (int k = 0; sid && k < w->nsessions; k++)
            if (w->sc[k].s && w->sc[k].sid == sid && listener_eq(w, first, w->sc[k].tindex))
                owner = w->sc[k].tindex;
        if (owner >= 0)
            want = owner;
        else if (src >= 0 && listener_eq(w, first, src))
            want = src;
        else
            for (int i = w->ntunnels - 1; i >= 0; i--)
                if (listener_eq(w, first, i)) want = i; /* tunnel IDs are index + 1 */
    }
    CHECK(ncounted == 1 && counter == want,
          "a datagram counted by %d tunnels (the last %d), not by tunnel %d alone", ncounted,
          counter + 1, want + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct world w;
    size_t pos = 0;
    memset(&w, 0, sizeof(w));
    uint8_t b0 = size ? data[0] : 0;
    pos = size ? 1 : 0;
    w.ip = b0 & 1;
    w.v6 = (b0 >> 1) & 1;
    int want = ((b0 >> 2) & 3) + 1;
    w.ntunnels = (b0 & 0x10) ? 3 : 1;
    CHECK(fp_own_init(&w.own) == 0, "fp_own_init");
    for (int i = 0; i < w.ntunnels; i++) {
        CHECK(fp_tunnel_init(&w.t[i], !w.ip, (uint32_t)i + 1, w.ip ? &w.own : NULL) == 0,
              "fp_tunnel_init");
        if (w.ip) {
            uint8_t local[16], peer[16];
            addr(&w, i, local, peer);
            CHECK(fp_own_add_tunnel(&w.own, (uint32_t)i + 1, w.v6 ? 6 : 4, local, peer) == 0,
                  "fp_own_add_tunnel");
        }
    }
    for (int i = 0; i < want; i++) {
        uint8_t hdr[5] = {0};
        for (int k = 0; k < 5 && pos < size; k++) hdr[k] = data[pos++];
        struct sess_cfg c;
        memset(&c, 0, sizeof(c));
        c.tindex = i % w.ntunnels;
        c.sid = (uint32_t)hdr[1] << 24 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 8 | hdr[4];
        if (!c.sid) c.sid = 1;
        c.cookie_len = cookie_lengths[hdr[0] & 3];
        for (int k = 0; k < c.cookie_len && pos < size; k++) c.peer_cookie[k] = data[pos++];
        c.l2spec = (hdr[0] >> 2) & 1;
        int seq = c.l2spec ? (hdr[0] >> 3) & 3 : 0;
        c.send_seq = seq == 1 || seq == 3;
        c.recv_seq = seq == 2 || seq == 3;
        c.timeout = reorder_ms[(hdr[0] >> 5) & 3] / 1000.0;
        c.lns = ((hdr[0] >> 5) & 3) == 1; /* reorder code 1: 0 ms, LNS mode */
        c.policy = (hdr[0] & 0x80) ? FP_POLICY_RFC3931 : FP_POLICY_KERNEL;
        int dup = 0;
        for (int k = 0; k < w.nsessions; k++)
            if (w.sc[k].sid == c.sid && (w.ip || w.sc[k].tindex == c.tindex)) dup = 1;
        if (dup) continue;
        w.sc[w.nsessions] = c;
        session_add(&w, &w.sc[w.nsessions]);
        w.nsessions++;
    }
    w.now = 1000.0;
    while (pos < size) {
        uint8_t ctl = data[pos++];
        size_t len = 0;
        if (pos < size) len = (size_t)data[pos++] << 8;
        if (pos < size) len |= data[pos++];
        if (len > size - pos) len = size - pos;
        const uint8_t *rec = data + pos;
        pos += len;
        w.now += time_steps[(ctl >> 2) & 7];
        if (!(ctl & 0x80)) {
            do_datagram(&w, ctl, rec, len);
        } else if (ctl & 0x40) {
            unsigned hi = len > 0 ? rec[0] : 0, lo = len > 1 ? rec[1] : 0;
            int mtu = 68 + (int)((hi << 8 | lo) % 9000);
            for (int k = 0; k < w.nsessions; k++)
                if (w.sc[k].s) w.sc[k].s->max_frame = mtu + FP_RX_FRAME_SLACK;
        } else if (w.nsessions) {
            struct sess_cfg *c = &w.sc[(len ? rec[0] : 0) % w.nsessions];
            if (c->s)
                session_del(&w, c);
            else
                session_add(&w, c);
        }
        if (ctl & 0x20) do_poll(&w);
    }
    for (int k = 0; k < w.nsessions; k++)
        if (w.sc[k].s) session_del(&w, &w.sc[k]);
    for (int i = 0; i < w.ntunnels; i++) {
        CHECK(w.t[i].queued == 0, "tunnel %d: held count %ld after all sessions left", i + 1,
              w.t[i].queued);
        fp_tunnel_clear(&w.t[i]);
    }
    fp_own_clear(&w.own);
    return 0;
}
