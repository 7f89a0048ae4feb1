/* See fp_engine.h. The packet loops: what each thread does per batch and per packet. */
#define _GNU_SOURCE
#include "fp_engine.h"
#include "fp_capture.h"
#include "fp_netio.h"
#include "offload.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(struct virtio_net_hdr) == VNET_HLEN, "VNET_HDR_LEN in constants.py");

double fp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
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

/* Handle n datagrams read by rx_recv. Called with rx_lock held. Inlined twice, with a
 * capture and with cap NULL (rx_handle), so that without one the per-packet loop has
 * no capture test at all. */
static inline __attribute__((always_inline)) void rx_handle_cap(struct fp_engine *e, int n,
                                                                double now, struct fp_out *out,
                                                                struct fp_capture *cap)
{
    struct fp_tunnel *t = e->t;
    for (int i = 0; i < n; i++) {
        const struct sockaddr_storage *src = &e->rx_addr[i];
        uint8_t *p = e->rx_bufs + (size_t)i * BUFSZ + HEADROOM;
        size_t len = e->rx_msgs[i].msg_len;
        if (e->rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC) len = 0;
        if (e->o.strip_ip) {
            /* IPv4 raw sockets deliver the IP header: skip it by its IHL. */
            if (len < FP_IPV4_HLEN) continue;
            size_t ihl = (size_t)(p[0] & 0x0F) * 4;
            if (ihl > len) ihl = len;
            p += ihl;
            len -= ihl;
        }
        if (!is_peer(e, src)) {
            /* wrong_source, or over IP maybe another tunnel's to count. */
            uint8_t host[16] = { 0 };
            int family = 0;
            if (src->ss_family == AF_INET) {
                memcpy(host, &((const struct sockaddr_in *)src)->sin_addr, 4);
                family = 4;
            } else if (src->ss_family == AF_INET6) {
                memcpy(host, &((const struct sockaddr_in6 *)src)->sin6_addr, 16);
                family = 6;
            }
            if (cap)
                fp_capture_receive_foreign(t, cap, p, len, family, host);
            else
                fp_tunnel_receive_foreign(t, p, len, family, host);
            continue;
        }
        /* UDP_GRO: several datagrams of gso_size bytes (the last maybe shorter)
         * arrive as one; take them apart again. */
        size_t seg = e->st.udp_gro ? fp_gro_size(&e->rx_msgs[i].msg_hdr) : 0;
        if (seg) e->st.gro_datagrams_in++;
        if (!seg || seg >= len) seg = len;
        size_t off = 0;
        do {
            size_t k = len - off < seg ? len - off : seg;
            struct fp_session *s;
            if (e->esp && e->esp->nin > 0) {
                /* An inbound SA: the peer's L2TPv3 must come in ESP (as io/ports.py). */
                e->esp->drops[FP_ESP_DROP_PLAINTEXT]++;
                off += k;
                continue;
            }
            if (cap)
                fp_capture_receive(t, cap, p + off, k, now, out, &s);
            else
                fp_tunnel_receive(t, p + off, k, now, out, &s);
            off += k;
        } while (off < len);
    }
}

/* n ESP packets read from the ESP socket (as io/espport.py EspPath._on_readable and
 * receive): another host's are ignored (its own tunnel's socket has a copy), as are
 * NAT keepalives and IKE on espinudp; the rest is opened in place and handed to the
 * tunnel as the peer's datagram. Called with rx_lock held. */
static void rx_esp(struct fp_engine *e, int n, double now, struct fp_out *out)
{
    struct fp_tunnel *t = e->t;
    struct fp_esp_path *path = e->esp;
    if (!path) return;
    for (int i = 0; i < n; i++) {
        const struct sockaddr_storage *src = &e->rx_addr[i];
        uint8_t *p = e->rx_bufs + (size_t)i * BUFSZ + HEADROOM;
        size_t len = e->rx_msgs[i].msg_len;
        if (e->rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC) continue;
        if (src->ss_family != e->esp_peer.ss_family) continue;
        if (src->ss_family == AF_INET) {
            const struct sockaddr_in *x = (const void *)src, *y = (const void *)&e->esp_peer;
            if (x->sin_addr.s_addr != y->sin_addr.s_addr) continue;
            if (e->espinudp && x->sin_port != y->sin_port) continue;
        } else {
            const struct sockaddr_in6 *x = (const void *)src, *y = (const void *)&e->esp_peer;
            if (memcmp(&x->sin6_addr, &y->sin6_addr, 16) != 0) continue;
            if (e->espinudp && x->sin6_port != y->sin6_port) continue;
        }
        if (e->espinudp) {
            /* RFC 3948 §2.2-2.3: a NAT keepalive (one 0xff byte) or IKE (four zero
             * bytes first) is not ESP, and not ours to count. */
            if (len == 1 && p[0] == 0xff) continue;
            if (len >= 4 && !p[0] && !p[1] && !p[2] && !p[3]) continue;
        } else if (path->family == 4) {
            /* An IPv4 raw socket delivers the IP header: skip it by its IHL. */
            if (len < FP_IPV4_HLEN) continue;
            size_t ihl = (size_t)(p[0] & 0x0F) * 4;
            if (ihl > len) ihl = len;
            p += ihl;
            len -= ihl;
        }
        uint8_t *d;
        size_t dlen;
        int reason;
        if (fp_esp_path_open(path, p, len, &d, &dlen, &reason) != 0) continue;
        struct fp_session *s;
        /* A capture records the datagram opened, as the Python path does. */
        if (t->cap)
            fp_capture_receive(t, t->cap, d, dlen, now, out, &s);
        else
            fp_tunnel_receive(t, d, dlen, now, out, &s);
    }
}

static void rx_handle(struct fp_engine *e, int n, double now, struct fp_out *out)
{
    /* `l2tpv3 capture`: the one test per batch when none runs. */
    struct fp_capture *cap = e->t->cap;
    if (cap)
        rx_handle_cap(e, n, now, out, cap);
    else
        rx_handle_cap(e, n, now, out, NULL);
}

/* The datagrams of a batch about to be sent, for a capture. */
static void tx_capture(struct fp_engine *e, const struct iovec *iov, struct fp_session **sess,
                       int from, int n)
{
    struct fp_capture *cap = e->t->cap;
    for (int i = from; i < n; i++)
        fp_capture_add(cap, FP_CAPTURE_OUT, sess[i]->session_id, 0, iov[i].iov_base,
                       iov[i].iov_len);
}

/* `ip link set l2tpethN mtu N` queues an RTM_NEWLINK on every subscribed socket before
 * it returns, so any datagram read after that finds the event queued here. Reading it
 * in this thread, after each read of datagrams and before they are handled, makes the
 * new MTU hold for the very next frame; the asyncio loop (l2tpv3/io/netlink.py) gets
 * the same event later and sets the same value. The link socket is opened non-blocking. */
static int link_open(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return -1;
    struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK };
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void link_event(struct fp_tunnel *t, const struct nlmsghdr *h)
{
    if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
        return;
    const struct ifinfomsg *ifi = NLMSG_DATA(h);
    int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*ifi));
    uint32_t mtu = 0;
    for (const struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len))
        if (a->rta_type == IFLA_MTU && RTA_PAYLOAD(a) >= sizeof(mtu))
            memcpy(&mtu, RTA_DATA(a), sizeof(mtu));
    /* No MTU in the message: nothing changes (never a limit that drops every frame). */
    if (mtu == 0 || mtu > FP_MAX_MTU || ifi->ifi_index <= 0) return;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (struct fp_session *s = t->buckets[i]; s; s = s->hnext)
            if (s->ifindex == ifi->ifi_index) fp_session_set_mtu(s, (int)mtu);
}

/* Apply the queued link events. Called with rx_lock held. After an overflow (ENOBUFS:
 * newer events were lost, the queue holds older ones) the queue is discarded: the
 * asyncio loop, which saw every event, sets the MTU. */
static void link_drain(struct fp_engine *e)
{
    char buf[32768] __attribute__((aligned(NLMSG_ALIGNTO)));
    int discard = 0;
    if (e->link_fd < 0) return;
    for (;;) {
        ssize_t n = recv(e->link_fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == ENOBUFS) {
                discard = 1;
                continue;
            }
            return;
        }
        if (discard) continue;
        int len = (int)n;
        for (const struct nlmsghdr *h = (const struct nlmsghdr *)buf; NLMSG_OK(h, len);
             h = NLMSG_NEXT(h, len))
            link_event(e->t, h);
    }
}

static void *rx_main(void *arg)
{
    struct fp_engine *e = arg;
    struct fp_tunnel *t = e->t;
    struct fp_out out = { tap_write, e };
    /* The peer's datagrams arrive on the connected socket (it matches them better);
     * anyone else's on the tunnel socket, where they are counted as wrong_source. */
    struct pollfd pfd[6] = { { e->o.sock, POLLIN, 0 }, { e->wake_fd, POLLIN, 0 },
                             { e->conn_fd, POLLIN, 0 }, { e->link_fd, POLLIN, 0 },
                             { e->esp_wake, POLLIN, 0 }, { -1, POLLIN, 0 } };
    nfds_t npfd = 6; /* poll ignores a negative fd */
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
        /* The ESP socket may change between polls (add sa, del sa); a stale number is
         * harmless: it is read only if it is still the engine's under rx_lock. */
        int esp_fd = e->esp_fd;
        pfd[5].fd = esp_fd;
        int pr = poll(pfd, npfd, timeout);
        if (e->stopping) break;
        if (pr < 0 && errno != EINTR) break;
        if (pr > 0 && (pfd[4].revents & POLLIN)) {
            uint64_t v;
            ssize_t rr = read(e->esp_wake, &v, sizeof(v));
            (void)rr;
        }
        if (pr > 0 && esp_fd >= 0 && (pfd[5].revents & (POLLIN | POLLERR))) {
            pthread_mutex_lock(&t->rx_lock);
            if (esp_fd == e->esp_fd && e->esp) {
                if (pfd[5].revents & POLLERR) fp_netio_clear_error(esp_fd);
                int k = fp_netio_recv(e, esp_fd);
                if (k) {
                    link_drain(e);
                    rx_esp(e, k, fp_now(), &out);
                    gro_flush(e);
                }
            }
            pthread_mutex_unlock(&t->rx_lock);
        }
        if (pr > 0 && (pfd[0].revents & POLLERR)) fp_netio_clear_error(e->o.sock);
        if (pr > 0 && (pfd[2].revents & POLLERR)) fp_netio_clear_error(e->conn_fd);
        int n = pr > 0 && (pfd[0].revents & POLLIN) ? fp_netio_recv(e, e->o.sock) : 0;
        double now = fp_now();
        if (n) {
            pthread_mutex_lock(&t->rx_lock);
            link_drain(e);
            rx_handle(e, n, now, &out);
            gro_flush(e);
            pthread_mutex_unlock(&t->rx_lock);
        }
        n = pr > 0 && (pfd[2].revents & POLLIN) ? fp_netio_recv(e, e->conn_fd) : 0;
        if (n) now = fp_now();
        pthread_mutex_lock(&t->rx_lock);
        /* Also when only link events woke us, so that their queue never overflows. */
        if (n || (pr > 0 && (pfd[3].revents & POLLIN))) link_drain(e);
        rx_handle(e, n, now, &out);
        if (t->queued > 0) {
            for (size_t i = 0; i < t->nbuckets; i++)
                for (struct fp_session *s = t->buckets[i]; s; s = s->hnext) {
                    double d;
                    if (fp_session_next_deadline(s, &d) && d <= now) fp_session_poll(s, now, &out);
                }
        }
        gro_flush(e);
        int ctl = t->ctl_new;
        t->ctl_new = 0;
        pthread_mutex_unlock(&t->rx_lock);
        /* Control messages wait for the asyncio loop (take_control). */
        if (ctl) signal_fd(e->notify_fd);
    }
    return NULL;
}

/* Where this batch goes: the ESP socket to the peer while ESP is on, else the
 * tunnel's (connected) socket. Called with tx_lock held. */
static void tx_target(struct fp_engine *e, struct mmsghdr *msgs, int n)
{
    void *name = NULL;
    socklen_t nlen = 0;
    if (e->esp) {
        e->tx_fd = e->esp_fd;
        name = &e->esp_peer;
        nlen = e->esp_peer_len;
    } else if (e->conn_fd >= 0) {
        e->tx_fd = e->conn_fd;
    } else {
        e->tx_fd = e->o.sock;
        name = &e->o.peer;
        nlen = e->o.peer_len;
    }
    for (int i = 0; i < n; i++) {
        msgs[i].msg_hdr.msg_name = name;
        msgs[i].msg_hdr.msg_namelen = nlen;
    }
}

/* ESP on: seal the L2TPv3 datagram in iov in place (its room in front and behind is
 * the buffer's headroom and tailroom); 0, or -1 counted on the session as a send
 * failure, as the Python path counts an EspPath.sendto that raises. */
static int tx_seal(struct fp_engine *e, struct fp_session *s, struct iovec *iov, size_t *plen)
{
    *plen = iov->iov_len;
    uint8_t *pkt;
    /* `l2tpv3 capture` records the L2TPv3 datagram in clear, before it is sealed. */
    if (e->t->cap)
        fp_capture_add(e->t->cap, FP_CAPTURE_OUT, s->session_id, 0, iov->iov_base,
                       iov->iov_len);
    long r = fp_esp_path_seal(e->esp, iov->iov_base, iov->iov_len, &pkt);
    if (r < 0) {
        fp_session_tx_failed(s, iov->iov_len);
        return -1;
    }
    iov->iov_base = pkt;
    iov->iov_len = (size_t)r;
    return 0;
}

/* After a batch: an outbound AEAD SA short of IVs asks the daemon for the next block
 * (io/ivstate.py: only the asyncio loop may fsync); until it comes the SA keeps using
 * what is left, then stops sealing (tx_errors), never reusing one. */
static void tx_check_ivs(struct fp_engine *e)
{
    const struct fp_esp_sa *sa = e->esp ? e->esp->out : NULL;
    if (!sa || !sa->aead || sa->iv_limit == UINT64_MAX || e->iv_request) return;
    if (sa->iv_limit - sa->iv_ctr < FP_ESP_IV_LOW_WATER) {
        e->iv_request = 1;
        signal_fd(e->notify_fd);
    }
}

static void tx_flush(struct fp_engine *e, int cnt)
{
    tx_target(e, e->tx_msgs, cnt);
    /* Sealed datagrams were recorded in clear by tx_seal. */
    if (e->t->cap && !e->esp) tx_capture(e, e->tx_iov, e->tx_sess, 0, cnt);
    fp_netio_send_batch(e, e->tx_msgs, e->tx_iov, e->tx_sess, e->esp ? e->tx_plen : NULL, 0, cnt);
}

/* Send the segments of one super-frame, now: their buffer is reused for the next. */
static void seg_flush(struct fp_engine *e, int n)
{
    tx_target(e, e->seg_msgs, n);
    if (e->t->cap && !e->esp) tx_capture(e, e->seg_iov, e->seg_sess, 0, n);
    /* Each ESP packet is sealed on its own: GSO would cut after sealing. */
    int done = e->st.udp_gso && !e->esp ? fp_netio_gso_send(e, n) : 0;
    fp_netio_send_batch(e, e->seg_msgs, e->seg_iov, e->seg_sess, e->esp ? e->seg_plen : NULL, done, n);
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
    size_t stride = (max_frame + HEADROOM + TAILROOM + 63) & ~(size_t)63;
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
    int k = 0;
    for (int i = 0; i < n; i++) {
        uint8_t *f = out + (size_t)i * stride;
        uint8_t *hdr = f - s->tx_hlen;
        fp_session_header(s, hdr, e->seglens[i]);
        e->seg_iov[k].iov_base = hdr;
        e->seg_iov[k].iov_len = e->seglens[i] + (size_t)s->tx_hlen;
        e->seg_sess[k] = s;
        if (e->esp && tx_seal(e, s, &e->seg_iov[k], &e->seg_plen[k]) < 0) continue;
        k++;
    }
    if (k) seg_flush(e, k);
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

/* A batch from a trunk TAP (no virtio-net header): each frame goes to the session its
 * outer VID maps to (proto/vlan.py Trunk.classify), without its tag with pop. Under
 * tx_lock; returns the new count of queued datagrams. */
static int trunk_read(struct fp_engine *e, struct fp_trunk *tr, int cnt)
{
    struct fp_tunnel *t = e->t;
    int batch = e->o.batch;
    if (!tr || tr->fd < 0) return cnt;
    for (int k = 0; k < batch; k++) {
        if (cnt == batch) {
            tx_flush(e, cnt);
            cnt = 0;
        }
        uint8_t *frame = e->tx_bufs + (size_t)cnt * BUFSZ + HEADROOM;
        ssize_t r = read(tr->fd, frame, FRAMESZ); /* the tailroom is ESP's */
        if (r < 0) {
            if (errno == EBADFD) {
                /* `ip link del` on the trunk: the daemon deletes its sessions. */
                epoll_ctl(e->epfd, EPOLL_CTL_DEL, tr->fd, NULL);
                for (int vid = 0; vid < 4096; vid++) {
                    struct fp_session *s = tr->sid[vid] ? fp_tunnel_lookup(t, tr->sid[vid]) : NULL;
                    if (s) push_gone(e, s);
                }
            }
            break;
        }
        uint32_t sid = fp_trunk_classify(tr, frame, (size_t)r);
        struct fp_session *s = sid ? fp_tunnel_lookup(t, sid) : NULL;
        if (!s) continue;
        size_t len = (size_t)r;
        int cut = fp_session_untag(s, frame, len);
        frame += cut;
        len -= (size_t)cut;
        if (s->mss_setting) fp_session_clamp(s, frame, len, 0, 0, 0);
        uint8_t *hdr = frame - s->tx_hlen;
        fp_session_header(s, hdr, len);
        e->tx_iov[cnt].iov_base = hdr;
        e->tx_iov[cnt].iov_len = len + (size_t)s->tx_hlen;
        e->tx_sess[cnt] = s;
        /* A trunk's tunnel with an outbound SA sends only ESP, as its TAP sessions. */
        if (e->esp && tx_seal(e, s, &e->tx_iov[cnt], &e->tx_plen[cnt]) < 0) continue;
        cnt++;
    }
    return cnt;
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
            if (evs[i].data.u64 & TRUNK_KEY) {
                cnt = trunk_read(e, t->trunks[evs[i].data.u64 & (TRUNK_KEY - 1)], cnt);
                continue;
            }
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
                ssize_t r = read(s->tap_fd, frame - vlen, FRAMESZ + (size_t)vlen);
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
                    /* Before checksum completion or segmentation, which then sum the
                     * clamped bytes; a NEEDS_CSUM field keeps its pseudo-header sum. */
                    if (s->mss_setting)
                        fp_session_clamp(s, frame, (size_t)r,
                                         !!(vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM),
                                         vh.csum_start, vh.csum_offset);
                    if (vh.gso_type != VIRTIO_NET_HDR_GSO_NONE && cnt) {
                        /* Its segments go out at once: what was read before goes first,
                         * so the wire keeps the TAP's order (and sequence numbers). */
                        tx_flush(e, cnt);
                        cnt = 0;
                    }
                    if (!tx_offload(e, s, &vh, frame, (size_t)r)) continue;
                } else if (s->mss_setting) {
                    fp_session_clamp(s, frame, (size_t)r, 0, 0, 0);
                }
                uint8_t *hdr = frame - s->tx_hlen;
                fp_session_header(s, hdr, (size_t)r);
                e->tx_iov[cnt].iov_base = hdr;
                e->tx_iov[cnt].iov_len = (size_t)r + (size_t)s->tx_hlen;
                e->tx_sess[cnt] = s;
                if (e->esp && tx_seal(e, s, &e->tx_iov[cnt], &e->tx_plen[cnt]) < 0) continue;
                cnt++;
            }
        }
        if (cnt) tx_flush(e, cnt);
        tx_check_ivs(e);
        pthread_mutex_unlock(&t->tx_lock);
    }
    return NULL;
}

static void engine_free(struct fp_engine *e)
{
    if (e->conn_fd >= 0) close(e->conn_fd);
    if (e->link_fd >= 0) close(e->link_fd);
    if (e->wake_fd >= 0) close(e->wake_fd);
    if (e->notify_fd >= 0) close(e->notify_fd);
    if (e->esp_wake >= 0) close(e->esp_wake);
    if (e->epfd >= 0) close(e->epfd);
    free(e->tx_bufs);
    free(e->tx_msgs);
    free(e->tx_iov);
    free(e->tx_sess);
    free(e->tx_plen);
    free(e->rx_bufs);
    free(e->rx_msgs);
    free(e->rx_iov);
    free(e->rx_addr);
    free(e->segbuf);
    free(e->seglens);
    free(e->seg_iov);
    free(e->seg_msgs);
    free(e->seg_sess);
    free(e->seg_plen);
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
    e->wake_fd = e->notify_fd = e->epfd = e->conn_fd = e->esp_fd = e->esp_wake = -1;
    /* Without it (no netlink), the MTU still follows through the asyncio loop, later. */
    e->link_fd = link_open();
    e->tx_fd = o->sock;
    pthread_mutex_init(&e->gone_lock, NULL);
    size_t b = (size_t)o->batch;
    e->tx_bufs = malloc(b * BUFSZ);
    e->tx_msgs = calloc(b, sizeof(*e->tx_msgs));
    e->tx_iov = calloc(b, sizeof(*e->tx_iov));
    e->tx_sess = calloc(b, sizeof(*e->tx_sess));
    e->tx_plen = calloc(b, sizeof(*e->tx_plen));
    e->rx_bufs = malloc(b * BUFSZ);
    e->rx_msgs = calloc(b, sizeof(*e->rx_msgs));
    e->rx_iov = calloc(b, sizeof(*e->rx_iov));
    e->rx_addr = calloc(b, sizeof(*e->rx_addr));
    e->segbuf = malloc(SEGBUF);
    e->seglens = calloc(MAX_SEGS, sizeof(*e->seglens));
    e->seg_iov = calloc(MAX_SEGS, sizeof(*e->seg_iov));
    e->seg_msgs = calloc(MAX_SEGS, sizeof(*e->seg_msgs));
    e->seg_sess = calloc(MAX_SEGS, sizeof(*e->seg_sess));
    e->seg_plen = calloc(MAX_SEGS, sizeof(*e->seg_plen));
    e->rx_cmsg = calloc(b, CMSG_BUF);
    e->gro = malloc(sizeof(*e->gro));
    e->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    e->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    e->esp_wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->esp_wake < 0 || !e->tx_bufs || !e->tx_msgs || !e->tx_iov || !e->tx_sess || !e->tx_plen || !e->rx_bufs ||
        !e->rx_msgs || !e->rx_iov || !e->rx_addr || !e->segbuf || !e->seglens || !e->seg_iov ||
        !e->seg_msgs || !e->seg_sess || !e->seg_plen || !e->rx_cmsg || !e->gro || e->wake_fd < 0 || e->notify_fd < 0 ||
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
        e->rx_iov[i].iov_len = FRAMESZ;
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
    if (t->udp) fp_netio_connect_tx(e);
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

    fp_tunnel_lock(t);
    t->engine = e;
    for (int i = 0; i < FP_MAX_TRUNKS; i++)
        if (t->trunks[i]) {
            struct epoll_event tev = { .events = EPOLLIN, .data.u64 = TRUNK_KEY | (uint64_t)i };
            epoll_ctl(e->epfd, EPOLL_CTL_ADD, t->trunks[i]->fd, &tev);
        }
    for (size_t i = 0; i < t->nbuckets; i++)
        for (struct fp_session *s = t->buckets[i]; s; s = s->hnext)
            if (s->tap_fd >= 0 && !s->vlan) {
                struct epoll_event sev = { .events = EPOLLIN, .data.u64 = s->session_id };
                epoll_ctl(e->epfd, EPOLL_CTL_ADD, s->tap_fd, &sev);
            }
    fp_tunnel_unlock(t);

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
    fp_tunnel_lock(t);
    t->engine = NULL;
    fp_tunnel_unlock(t);
    engine_free(e);
}

int fp_engine_attach(struct fp_tunnel *t, struct fp_session *s, int tap_fd, int vnet)
{
    int rc = 0;
    fp_tunnel_lock(t);
    s->tap_fd = tap_fd;
    s->vnet = vnet;
    /* A trunk session writes to the trunk; the trunk itself is polled (trunk_read). */
    if (t->engine && !s->vlan) {
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = s->session_id };
        rc = epoll_ctl(t->engine->epfd, EPOLL_CTL_ADD, tap_fd, &ev);
    }
    fp_tunnel_unlock(t);
    return rc;
}

void fp_engine_detach(struct fp_tunnel *t, struct fp_session *s)
{
    fp_tunnel_lock(t);
    if (t->engine && s->tap_fd >= 0 && !s->vlan)
        epoll_ctl(t->engine->epfd, EPOLL_CTL_DEL, s->tap_fd, NULL);
    s->tap_fd = -1;
    fp_tunnel_unlock(t);
}

int fp_engine_attach_trunk(struct fp_tunnel *t, struct fp_trunk *tr, int fd)
{
    int rc = -1;
    fp_tunnel_lock(t);
    for (int i = 0; i < FP_MAX_TRUNKS; i++) {
        if (t->trunks[i]) continue;
        tr->fd = fd;
        tr->slot = i;
        t->trunks[i] = tr;
        rc = 0;
        if (t->engine) {
            struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TRUNK_KEY | (uint64_t)i };
            rc = epoll_ctl(t->engine->epfd, EPOLL_CTL_ADD, fd, &ev);
            if (rc < 0) {
                t->trunks[i] = NULL;
                tr->slot = -1;
                tr->fd = -1;
            }
        }
        break;
    }
    fp_tunnel_unlock(t);
    return rc;
}

void fp_engine_detach_trunk(struct fp_tunnel *t, struct fp_trunk *tr)
{
    fp_tunnel_lock(t);
    if (tr->slot >= 0 && t->trunks[tr->slot] == tr) {
        if (t->engine && tr->fd >= 0) epoll_ctl(t->engine->epfd, EPOLL_CTL_DEL, tr->fd, NULL);
        t->trunks[tr->slot] = NULL;
    }
    tr->slot = -1;
    tr->fd = -1;
    fp_tunnel_unlock(t);
}

void fp_engine_get_stats(const struct fp_tunnel *t, struct fp_engine_stats *st)
{
    if (t->engine) *st = t->engine->st; else memset(st, 0, sizeof(*st));
}

int fp_engine_follows_links(const struct fp_tunnel *t)
{
    return t->engine && t->engine->link_fd >= 0;
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
void fp_engine_set_esp(struct fp_tunnel *t, struct fp_esp_path *path, int fd,
                       const struct sockaddr_storage *peer, socklen_t peer_len, int espinudp)
{
    fp_tunnel_lock(t);
    struct fp_engine *e = t->engine;
    if (e) {
        e->esp = fd >= 0 ? path : NULL;
        e->esp_fd = e->esp ? fd : -1;
        e->espinudp = espinudp;
        if (peer && e->esp) {
            memcpy(&e->esp_peer, peer, sizeof(e->esp_peer));
            e->esp_peer_len = peer_len;
        }
        e->iv_request = 0;
    }
    fp_tunnel_unlock(t);
    if (e) signal_fd(e->esp_wake);
}

long fp_engine_esp_seal(struct fp_tunnel *t, struct fp_esp_path *path, uint8_t *d, size_t len,
                        uint8_t **pkt)
{
    pthread_mutex_lock(&t->tx_lock);
    long r = fp_esp_path_seal(path, d, len, pkt);
    pthread_mutex_unlock(&t->tx_lock);
    return r;
}

int fp_engine_iv_requested(const struct fp_tunnel *t)
{
    return t->engine && t->engine->iv_request;
}

void fp_engine_esp_grant(struct fp_tunnel *t, struct fp_esp_sa *sa, uint64_t first, uint64_t last)
{
    pthread_mutex_lock(&t->tx_lock);
    sa->iv_ctr = first - 1;
    sa->iv_limit = last;
    if (t->engine) t->engine->iv_request = 0;
    pthread_mutex_unlock(&t->tx_lock);
}
