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

#include "fp_esp.h"
#include "fp_tunnel.h"
#include "offload.h"

/* Room in front of every frame for the L2TP header and a virtio-net header (HEADROOM,
 * constants.py); frames are read right after it and the header is written in place,
 * so sending copies nothing. */
#define HEADROOM FP_HEADROOM
/* ESP seals in place: the trailer and ICV (at most fp_esp_tail, 34 bytes) go after
 * the frame, so every buffer and TSO segment keeps this much room behind it. */
#define TAILROOM 64
#define FRAMESZ 65536
#define BUFSZ (FRAMESZ + HEADROOM + TAILROOM)
#define WAKE_KEY UINT64_MAX
#define TRUNK_KEY (1ull << 40) /* | slot: an epoll key that is no session ID */
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
/* A trunk TAP (fp_vlan.h): the engine reads tr->fd and hands each frame to the session
 * its VID maps to. Sessions on it are attached with that fd and are not polled.
 * attach: -1 when all FP_MAX_TRUNKS slots are taken or epoll refuses. */
int fp_engine_attach_trunk(struct fp_tunnel *t, struct fp_trunk *tr, int fd);
void fp_engine_detach_trunk(struct fp_tunnel *t, struct fp_trunk *tr);
int fp_engine_notify_fd(const struct fp_tunnel *t);
/* The receive thread follows the attached TAPs' MTUs through RTM_NEWLINK itself. */
int fp_engine_follows_links(const struct fp_tunnel *t);
/* Session IDs whose TAP device vanished (EBADFD); returns how many were copied. */
int fp_engine_take_gone(struct fp_tunnel *t, uint32_t *out, int max);

/* ESP (issue 9): from now on the engine seals every datagram with path (owned by the
 * caller) and sends it on fd to peer (raw IPPROTO_ESP: port 0; espinudp: the encap
 * port), and opens what arrives on fd; NULL goes back to plain L2TPv3. fd is polled by
 * the receive thread; espinudp: fd is a UDP socket and peer's port is checked on
 * receive. Takes both locks: the caller changes the path's SAs only under them too
 * (fp_tunnel_lock). */
void fp_engine_set_esp(struct fp_tunnel *t, struct fp_esp_path *path, int fd,
                       const struct sockaddr_storage *peer, socklen_t peer_len, int espinudp);
/* Seal one datagram the daemon sends while the engine runs (control messages, frames
 * it injects), under the send lock: d[0..len) with fp_esp_path_head bytes before it and
 * fp_esp_tail after; as fp_esp_path_seal. */
long fp_engine_esp_seal(struct fp_tunnel *t, struct fp_esp_path *path, uint8_t *d, size_t len,
                        uint8_t **pkt);
/* 1 while the send thread waits for AEAD IVs: its outbound SA had fewer than
 * FP_ESP_IV_LOW_WATER left (it signalled the notify fd once). */
int fp_engine_iv_requested(const struct fp_tunnel *t);
/* Install IVs first..last (already reserved on disk, io/ivstate.py) under the send
 * lock, and clear the request. */
void fp_engine_esp_grant(struct fp_tunnel *t, struct fp_esp_sa *sa, uint64_t first, uint64_t last);

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
    /* With ESP: each queued packet's L2TPv3 datagram length before sealing, so that a
     * failed send takes back what the session and the SA counted (as io/espport.py). */
    size_t *tx_plen;
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
    size_t *seg_plen;
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
    /* ESP: the path and its socket (under both locks; -1/NULL when off), its peer
     * address, and an eventfd that makes the receive thread poll a new socket */
    struct fp_esp_path *esp;
    int esp_fd, espinudp, esp_wake;
    struct sockaddr_storage esp_peer;
    socklen_t esp_peer_len;
    volatile int iv_request;
};

double fp_now(void);

#endif
