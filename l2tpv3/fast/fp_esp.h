/* ESP (RFC 4303) in transport mode for the fast path: the C mirror of
 * l2tpv3/proto/esp.py (the reference; its comments say why each rule exists), on
 * OpenSSL's libcrypto. One struct per SA; its cipher and MAC contexts are made once,
 * when the SA is made, one set for sealing (the send thread's) and one for opening
 * (the receive thread's), so no packet allocates anything.
 *
 * Built without libcrypto (no openssl/evp.h: setup.py leaves FP_HAVE_ESP undefined)
 * fp_esp_available() is 0 and fp_esp_init fails; the daemon then runs encrypted
 * tunnels on the Python path. This header names no OpenSSL type either way.
 */
#ifndef L2TPV3_FP_ESP_H
#define L2TPV3_FP_ESP_H

#include <stddef.h>
#include <stdint.h>

#include "fp_shared.h" /* generated: ESP counter and drop indexes (cgen.py) */

/* Algorithms, as `ip xfrm state` names them. */
enum {
    FP_ESP_AES_GCM = 1,       /* aead rfc4106(gcm(aes)) 128 / 256, ICV 16 */
    FP_ESP_CHACHA20_POLY1305, /* aead rfc7539esp(chacha20,poly1305) (RFC 7634), ICV 16 */
    FP_ESP_AES_CBC_SHA256,    /* enc cbc(aes) auth hmac(sha256), ICV 16 (RFC 4868) */
    FP_ESP_AES_CBC_SHA1,      /* enc cbc(aes) auth hmac(sha1), ICV 12 (RFC 2404) */
};

/* SPI, sequence number (RFC 4303 §2). */
#define FP_ESP_HLEN 8
#define FP_ESP_MAX_IV 16
#define FP_ESP_MAX_ICV 16
/* Pad Length and Next Header, plus at most one block of padding. */
#define FP_ESP_MAX_TRAILER (2 + 16)
/* The longest anti-replay window kept (bits of the bitmap). */
#define FP_ESP_MAX_WINDOW 4096

struct fp_esp_sa {
    uint32_t spi;
    int alg;
    int esn;         /* 64-bit sequence numbers, high half authenticated, not sent */
    uint32_t window; /* anti-replay window in packets, 0 = no check (ip xfrm's default) */
    int iv_len, icv_len, block, aead;
    uint8_t salt[4]; /* AEAD: the last 4 bytes of the key (RFC 4106 §8.1, RFC 7634 §2) */
    /* send side: the last sequence number and AEAD IV used (the next are +1); the IV
     * is iv_ctr, 8 bytes big-endian. CBC IVs are random (RFC 3602 §2.3). */
    uint64_t seq;
    uint64_t iv_ctr;
    uint64_t iv_limit; /* the highest AEAD IV granted (EspSA.grant_ivs); UINT64_MAX: none */
    /* receive side: highest authenticated sequence number and the window behind it;
     * bit i of bitmap is top - i */
    uint64_t top;
    uint64_t bitmap[FP_ESP_MAX_WINDOW / 64];
    volatile uint64_t c[FP_NESPCOUNTERS];
    volatile uint64_t drops[FP_NESPDROPS];
    /* CBC: random IVs drawn from the DRBG 64 at a time (one RAND_bytes call per
     * packet cost more than the cipher on small packets); used once each, in order */
    uint8_t iv_pool[64 * 16];
    size_t iv_pool_used;
    /* libcrypto contexts (EVP_CIPHER_CTX *, EVP_MAC_CTX *), keyed once */
    void *seal_cipher, *seal_mac, *open_cipher, *open_mac, *iv_cipher;
};

/* 1 when built with libcrypto. */
int fp_esp_available(void);

/* Key the SA. enc_key: the AEAD key with its 4-byte salt at the end, or the AES key;
 * auth_key for the CBC algorithms. 0, or -1 with a reason in err (never a key byte). */
int fp_esp_init(struct fp_esp_sa *sa, uint32_t spi, int alg, const uint8_t *enc_key,
                size_t enc_len, const uint8_t *auth_key, size_t auth_len, int esn,
                uint32_t window, char *err, size_t errlen);
/* Frees the contexts and wipes the keys they hold; the struct may be cleared again. */
void fp_esp_clear(struct fp_esp_sa *sa);

/* Bytes in front of the payload (ESP header and IV) and at most after it (padding,
 * Pad Length, Next Header, ICV). */
static inline size_t fp_esp_head(const struct fp_esp_sa *sa)
{
    return FP_ESP_HLEN + (size_t)sa->iv_len;
}
static inline size_t fp_esp_tail(const struct fp_esp_sa *sa)
{
    return FP_ESP_MAX_TRAILER + (size_t)sa->icv_len;
}

/* Seal the len bytes at p in place: the ESP header and IV are written in the
 * fp_esp_head(sa) bytes in front of p, the trailer and ICV after it (fp_esp_tail(sa)
 * bytes must be there). Takes the next sequence number; iv is the explicit IV to use
 * (iv_len bytes), or NULL to make it as the SA does (fp_esp_next_iv). Returns the
 * length of the ESP packet, which starts at p - fp_esp_head(sa); -1 if the sequence
 * number space is used up or libcrypto fails (counted in FP_ESP_TX_ERRORS). */
long fp_esp_seal(struct fp_esp_sa *sa, uint8_t *p, size_t len, uint8_t next_header,
                 const uint8_t *iv);

/* Open the ESP packet pkt[0..len) in place. On success returns 0 with the payload at
 * *payload (inside pkt), its length and Next Header; otherwise -1 with the
 * FP_ESP_DROP_* reason in *reason, already counted. Never reads outside pkt[0..len). The SPI is
 * not checked here (the tunnel chose the SA by it). */
int fp_esp_open(struct fp_esp_sa *sa, uint8_t *pkt, size_t len, uint8_t **payload,
                size_t *plen, uint8_t *next_header, int *reason);

/* The SPI of an ESP packet, 0 if it is too short to hold one. */
static inline uint32_t fp_esp_spi(const uint8_t *p, size_t len)
{
    return len < FP_ESP_HLEN ? 0
                             : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One tunnel's ESP in transport mode (the C side of io/espport.py EspPath's packet
 * work, sans I/O): its outbound SA, its inbound SAs by SPI, the UDP header built for
 * encap udp, and the drops that belong to no SA (proto/esp.py EspInbound). The SAs are
 * owned by the caller. */
#define FP_ESP_MAX_IN 16
struct fp_esp_path {
    int udp;    /* encap udp: IP | ESP | UDP | L2TPv3 (Next Header 17); else 115 */
    int family; /* 4 or 6 */
    uint8_t local[16], remote[16];
    uint16_t sport, dport; /* the tunnel's UDP ports */
    int csum;              /* send a UDP checksum (udp_csum / udp6_csum_tx) */
    struct fp_esp_sa *out;
    struct fp_esp_sa *in[FP_ESP_MAX_IN];
    int nin;
    /* proto/espdemux.py: the inbound SPIs of the other tunnels whose sockets hear the
     * same packets (sorted, nforeign of them; owned by the caller), ignored here, and
     * quiet_unknown: another tunnel counts an SPI none knows (and a packet too short
     * for one), so this one ignores it too. */
    const uint32_t *foreign;
    int nforeign;
    int quiet_unknown;
    volatile uint64_t drops[FP_NESPDROPS];
};

/* Room fp_esp_path_seal needs in front of the datagram. */
static inline size_t fp_esp_path_head(const struct fp_esp_path *p)
{
    return (p->udp ? 8 : 0) + (p->out ? fp_esp_head(p->out) : FP_ESP_HLEN + FP_ESP_MAX_IV);
}
/* Seal the L2TPv3 datagram d[0..len) (a UDP header is put in front for encap udp):
 * fp_esp_path_head(p) bytes before d and fp_esp_tail(p->out) after it must be there.
 * Returns the ESP packet's length, *pkt its start; -1 (counted in the SA's tx_errors,
 * or no outbound SA) if it cannot go. */
long fp_esp_path_seal(struct fp_esp_path *p, uint8_t *d, size_t len, uint8_t **pkt);
/* Open the ESP packet pkt[0..len) in place: 0 with the L2TPv3 datagram in *d, *dlen;
 * -1 dropped (reason in *reason, counted on the SA or the path); 1 another tunnel's,
 * not counted (as espport.py): authenticated but encap udp ports not the tunnel's, or
 * an SPI of p->foreign, or with p->quiet_unknown an unknown SPI or no SPI at all. */
int fp_esp_path_open(struct fp_esp_path *p, uint8_t *pkt, size_t len, uint8_t **d, size_t *dlen,
                     int *reason);
/* RFC 768 / RFC 8200 §8.1 checksum of a UDP segment whose checksum field is zero. */
uint16_t fp_udp_checksum(int family, const uint8_t *src, const uint8_t *dst,
                         const uint8_t *seg, size_t len);

#endif
