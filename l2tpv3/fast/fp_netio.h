/* The engine's network I/O: socket set-up (the connected send socket), batched
 * recvmmsg/sendmmsg with the kernel's tx_errors accounting, UDP GSO sends and UDP GRO
 * receive metadata. Called by the engine's threads (fp_engine.c) only. */
#ifndef L2TPV3_FP_NETIO_H
#define L2TPV3_FP_NETIO_H

#include <netinet/udp.h>
#include <string.h>
#include <sys/socket.h>

#include "fp_engine.h"

/* Read one batch from fd; the number of datagrams (0 on error or nothing). */
int fp_netio_recv(struct fp_engine *e, int fd);
/* Clear a queued ICMP error, or poll would return at once for ever. */
void fp_netio_clear_error(int fd);
/* Send datagrams [done, cnt) of one batch (messages, their iovecs and sessions);
 * a datagram that cannot be sent is counted in its session's tx_errors. */
void fp_netio_send_batch(struct fp_engine *e, struct mmsghdr *msgs, const struct iovec *iov,
                         struct fp_session *const *sess, const size_t *plen, int done, int cnt);
/* Send segments [0, n) of seg_iov with UDP GSO; how many were sent. */
int fp_netio_gso_send(struct fp_engine *e, int n);
/* UDP: open the connected send socket (conn_fd, tx_fd), or leave conn_fd at -1. */
void fp_netio_connect_tx(struct fp_engine *e);

/* The gso_size a UDP_GRO socket reported for a coalesced datagram, or 0. */
static inline size_t fp_gro_size(struct msghdr *m)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c))
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == FP_UDP_GRO) {
            int v;
            memcpy(&v, CMSG_DATA(c), sizeof(v));
            return v > 0 ? (size_t)v : 0;
        }
    return 0;
}

#endif
