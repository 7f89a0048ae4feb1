/* See fp_netio.h: the engine's sockets and system calls. */
#define _GNU_SOURCE
#include "fp_netio.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

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

/* Read one batch from fd; the number of datagrams (0 on error or nothing). */
int fp_netio_recv(struct fp_engine *e, int fd)
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

void fp_netio_clear_error(int fd)
{
    /* A queued ICMP error: clear it, or poll would return at once for ever. */
    int soerr;
    socklen_t sl = sizeof(soerr);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
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
void fp_netio_send_batch(struct fp_engine *e, struct mmsghdr *msgs, const struct iovec *iov,
                       struct fp_session *const *sess, const size_t *plen, int done, int cnt)
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
        /* The kernel counts a failed transmit in tx_errors (l2tp_xmit_skb). Sealed
         * in ESP, the session counted the datagram before sealing, and so did the SA
         * (with the UDP header inside it): both take it back. */
        if (plen && e->esp && e->esp->out) {
            struct fp_esp_sa *sa = e->esp->out;
            sa->c[FP_ESP_TX_PACKETS]--;
            sa->c[FP_ESP_TX_BYTES] -= plen[done] + (e->esp->udp ? 8 : 0);
            sa->c[FP_ESP_TX_ERRORS]++;
            fp_session_tx_failed(sess[done], plen[done]);
        } else {
            fp_session_tx_failed(sess[done], iov[done].iov_len);
        }
        done++;
    }
}

/* Send segments [0, n) of seg_iov with UDP GSO: one sendmsg per run of equal-sized
 * datagrams. Returns how many were sent (the rest go through sendmmsg). */
int fp_netio_gso_send(struct fp_engine *e, int n)
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
 * Any failure leaves conn_fd at -1: everything goes through the tunnel socket.
 *
 * SO_REUSEADDR is only on for the moment the second socket binds: a UDP socket that
 * keeps it lets ANY local user bind the same address and port too (setting it on their
 * own socket is all it takes), receive the peer's datagrams and inject frames. Linux
 * checks sk_reuse of the sockets already bound when another binds, so clearing it on
 * both makes the port the daemon's alone again, as on the pure-Python path. */
static int exclusive(int fd)
{
    int zero = 0;
    return setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &zero, sizeof(zero));
}

void fp_netio_connect_tx(struct fp_engine *e)
{
    struct sockaddr_storage local;
    socklen_t ll = sizeof(local);
    int one = 1, fd = -1, v6 = e->o.family == 6;
    if (getsockname(e->o.sock, (struct sockaddr *)&local, &ll) < 0) return;
    if (setsockopt(e->o.sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) return;
    fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_UDP);
    if (fd < 0) {
        exclusive(e->o.sock);
        return;
    }
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
    if (exclusive(fd) < 0) goto fail;
    if (connect(fd, (const struct sockaddr *)&e->o.peer, e->o.peer_len) < 0) goto fail;
    if (exclusive(e->o.sock) < 0) goto fail;
    e->conn_fd = e->tx_fd = fd;
    return;
fail:
    close(fd);
    exclusive(e->o.sock);
}
