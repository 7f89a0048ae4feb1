/* IP-encap ownership of session IDs and peers: the C side of proto/ownership.py
 * (the pure-Python reference and the contract, proto/api.py IpOwnershipAPI).
 *
 * One struct per daemon, made by _fastpath.IpOwnership and given to every Cython Tunnel;
 * the tunnels' receive threads consult it, under its lock, only for datagrams they
 * cannot match (an unknown session ID, a drop, or a source that is not their peer), so
 * the per-packet path of a known session from the peer never touches it.
 *
 * Addresses are 16 bytes (IPv4 in the first 4, the rest zero) with a family of 4 or 6.
 */
#ifndef L2TPV3_FP_OWNERSHIP_H
#define L2TPV3_FP_OWNERSHIP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct fp_own_tunnel {
    uint32_t tunnel_id;
    int family; /* 4 or 6 */
    uint8_t local[16], peer[16];
};

struct fp_own_session {
    uint32_t session_id, tunnel_id;
};

struct fp_ownership {
    pthread_mutex_t lock;
    struct fp_own_tunnel *tunnels;
    size_t ntunnels, captunnels;
    struct fp_own_session *sessions; /* sorted by session_id */
    size_t nsessions, capsessions;
};

/* 0, or -1 out of memory. */
int fp_own_init(struct fp_ownership *o);
void fp_own_clear(struct fp_ownership *o);
/* Replaces the tunnel's listener if it has one. 0, or -1 out of memory. */
int fp_own_add_tunnel(struct fp_ownership *o, uint32_t tunnel_id, int family,
                      const uint8_t *local, const uint8_t *peer);
/* Forgets the tunnel and every session it owns. */
void fp_own_remove_tunnel(struct fp_ownership *o, uint32_t tunnel_id);
/* 0 claimed, 1 owned by another tunnel (*other set), -1 out of memory. */
int fp_own_claim(struct fp_ownership *o, uint32_t tunnel_id, uint32_t session_id,
                 uint32_t *other);
void fp_own_release(struct fp_ownership *o, uint32_t session_id);
/* 1 and *tunnel_id if the session ID is owned, else 0. */
int fp_own_owner(struct fp_ownership *o, uint32_t session_id, uint32_t *tunnel_id);
/* The tunnel that counts a datagram with session_id (0: none) from host (family 4 or
 * 6; NULL: tunnel_id's own peer) arriving on tunnel_id's listener: the rule of
 * proto/api.py IpOwnershipAPI. tunnel_id itself if it was never added. */
uint32_t fp_own_counter(struct fp_ownership *o, uint32_t tunnel_id, uint32_t session_id,
                        int family, const uint8_t *host);

#endif
