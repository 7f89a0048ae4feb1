/* The per-tunnel engine: two pthreads that run the packet loops without the GIL, a
 * receive thread (socket -> tunnel demux -> session -> TAP, with GRO) and a send thread
 * (TAP -> session header -> socket, with TSO segmentation and UDP GSO). The socket
 * set-up and the batched system calls are in fp_netio.c. */
#ifndef L2TPV3_FP_ENGINE_H
#define L2TPV3_FP_ENGINE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "fp_tunnel.h"
#include "offload.h"

/* Room in front of every frame for the L2TP header and a virtio-net header (HEADROOM,
 * constants.py); frames are read right after it and the header is written in place,
 * so sending copies nothing. */
#define HEADROOM FP_HEADROOM
#define BUFSZ (65536 + HEADROOM)
#define WAKE_KEY UINT64_MAX
#define MAX_GONE 256
#define VNET_HLEN FP_VNET_HDR_LEN /* the TAP is set to this size */
/* Segments of one TCP super-frame, each with headroom for the L2TP header. */
#define SEGBUF (2u << 20)
#define MAX_SEGS FP_MAX_SEGS
/* UDP GSO: at most 64 segments (UDP_MAX_SEGMENTS on older kernels) and a 64 KiB
 * datagram before it is split. */
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 60000
#define CMSG_BUF 64

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
/* The receive thread follows the attached TAPs' MTUs through RTM_NEWLINK itself. */
int fp_engine_follows_links(const struct fp_tunnel *t);
/* Session IDs whose TAP device vanished (EBADFD); returns how many were copied. */
int fp_engine_take_gone(struct fp_tunnel *t, uint32_t *out, int max);

struct fp_engine {
    struct fp_engine_opts o;
    struct fp_tunnel *t;
    int wake_fd, notify_fd, epfd;
    /* UDP: a second socket on the same local address and port, connected to the peer,
     * that the send thread uses (o.sock otherwise). See fp_netio_connect_tx. */
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
    /* rtnetlink (RTMGRP_LINK), read by the receive thread: a TAP's new MTU holds for the
     * next datagram (link_drain), -1 if it could not be opened */
    int link_fd;
};

double fp_now(void);

#endif
