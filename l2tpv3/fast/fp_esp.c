/* ESP (RFC 4303) transport mode on libcrypto: see fp_esp.h, and proto/esp.py for the
 * reference every rule here mirrors. */
#include "fp_esp.h"

#include <stdio.h>
#include <string.h>

#ifdef FP_HAVE_ESP

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

int fp_esp_available(void)
{
    return 1;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static EVP_CIPHER_CTX *cipher_ctx(const EVP_CIPHER *c, const uint8_t *key, int enc)
{
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    if (!x) return NULL;
    if (EVP_CipherInit_ex(x, c, NULL, key, NULL, enc) != 1) {
        EVP_CIPHER_CTX_free(x);
        return NULL;
    }
    EVP_CIPHER_CTX_set_padding(x, 0); /* ESP pads itself (RFC 4303 §2.4) */
    return x;
}

static EVP_MAC_CTX *hmac_ctx(const char *digest, const uint8_t *key, size_t len)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!mac) return NULL;
    EVP_MAC_CTX *m = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context keeps its own reference */
    if (!m) return NULL;
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_MAC_init(m, key, len, params) != 1) {
        EVP_MAC_CTX_free(m);
        return NULL;
    }
    return m;
}

void fp_esp_clear(struct fp_esp_sa *sa)
{
    /* Freeing a context cleanses the key schedule it holds. */
    EVP_CIPHER_CTX_free(sa->seal_cipher);
    EVP_CIPHER_CTX_free(sa->open_cipher);
    EVP_CIPHER_CTX_free(sa->iv_cipher);
    EVP_MAC_CTX_free(sa->seal_mac);
    EVP_MAC_CTX_free(sa->open_mac);
    sa->seal_cipher = sa->open_cipher = sa->iv_cipher = sa->seal_mac = sa->open_mac = NULL;
    OPENSSL_cleanse(sa->salt, sizeof(sa->salt));
    OPENSSL_cleanse(sa->iv_pool, sizeof(sa->iv_pool));
    sa->iv_pool_used = sizeof(sa->iv_pool);
}

static int fail(struct fp_esp_sa *sa, char *err, size_t errlen, const char *msg)
{
    fp_esp_clear(sa);
    snprintf(err, errlen, "%s", msg);
    return -1;
}

int fp_esp_init(struct fp_esp_sa *sa, uint32_t spi, int alg, const uint8_t *enc_key,
                size_t enc_len, const uint8_t *auth_key, size_t auth_len, int esn,
                uint32_t window, char *err, size_t errlen)
{
    memset(sa, 0, sizeof(*sa));
    sa->spi = spi;
    sa->alg = alg;
    sa->iv_limit = UINT64_MAX;
    sa->iv_pool_used = sizeof(sa->iv_pool); /* drawn at the first seal */
    sa->esn = !!esn;
    if (window > FP_ESP_MAX_WINDOW) return fail(sa, err, errlen, "replay window too large");
    sa->window = window;
    const EVP_CIPHER *cipher = NULL;
    const char *digest = NULL;
    size_t key_len = enc_len;
    switch (alg) {
    case FP_ESP_AES_GCM:
        /* RFC 4106 §8.1: the key carries a 4-byte salt at its end. */
        key_len = enc_len - 4;
        cipher = enc_len == 20 ? EVP_aes_128_gcm()
                 : enc_len == 28 ? EVP_aes_192_gcm()
                 : enc_len == 36 ? EVP_aes_256_gcm()
                                 : NULL;
        sa->aead = 1, sa->iv_len = 8, sa->icv_len = 16, sa->block = 4;
        break;
    case FP_ESP_CHACHA20_POLY1305:
        /* RFC 7634 §2: 256-bit key and a 4-byte salt. */
        key_len = enc_len - 4;
        cipher = enc_len == 36 ? EVP_chacha20_poly1305() : NULL;
        sa->aead = 1, sa->iv_len = 8, sa->icv_len = 16, sa->block = 4;
        break;
    case FP_ESP_AES_CBC_SHA256:
    case FP_ESP_AES_CBC_SHA1:
        cipher = enc_len == 16 ? EVP_aes_128_cbc()
                 : enc_len == 24 ? EVP_aes_192_cbc()
                 : enc_len == 32 ? EVP_aes_256_cbc()
                                 : NULL;
        /* RFC 4868 §2.3: HMAC-SHA-256-128; RFC 2404: HMAC-SHA-1-96. */
        digest = alg == FP_ESP_AES_CBC_SHA256 ? "SHA256" : "SHA1";
        sa->iv_len = 16, sa->block = 16;
        sa->icv_len = alg == FP_ESP_AES_CBC_SHA256 ? 16 : 12;
        if (!auth_key || auth_len == 0 || auth_len > 64)
            return fail(sa, err, errlen, "bad authentication key length");
        break;
    default:
        return fail(sa, err, errlen, "unknown algorithm");
    }
    if (!cipher || enc_len < 4) return fail(sa, err, errlen, "bad key length for the algorithm");
    if (sa->aead) memcpy(sa->salt, enc_key + key_len, 4);
    sa->seal_cipher = cipher_ctx(cipher, enc_key, 1);
    sa->open_cipher = cipher_ctx(cipher, enc_key, 0);
    if (!sa->seal_cipher || !sa->open_cipher) return fail(sa, err, errlen, "libcrypto: cipher");
    if (digest) {
        sa->seal_mac = hmac_ctx(digest, auth_key, auth_len);
        sa->open_mac = hmac_ctx(digest, auth_key, auth_len);
        if (!sa->seal_mac || !sa->open_mac) return fail(sa, err, errlen, "libcrypto: hmac");
    }
    return 0;
}

/* The explicit IV of the next packet (sequence number seq). */
static int next_iv(struct fp_esp_sa *sa, uint64_t seq, uint8_t *iv)
{
    (void)seq;
    if (sa->aead) {
        /* RFC 4106 §3.1 / RFC 7634 §2: the IV must never repeat under one key; a
         * counter within the range granted from a reservation on disk does that
         * (proto/esp.py, docs/security.md). */
        if (sa->iv_ctr >= sa->iv_limit) return -1;
        put64(iv, ++sa->iv_ctr);
        return 0;
    }
    /* CBC: an unpredictable IV (RFC 3602 §2.3), from the DRBG as the reference's
     * os.urandom; unused pool bytes are wiped with the SA. */
    if (sa->iv_pool_used + 16 > sizeof(sa->iv_pool)) {
        if (RAND_bytes(sa->iv_pool, (int)sizeof(sa->iv_pool)) != 1) return -1;
        sa->iv_pool_used = 0;
    }
    memcpy(iv, sa->iv_pool + sa->iv_pool_used, 16);
    sa->iv_pool_used += 16;
    return 0;
}

/* AAD of the AEAD algorithms: SPI, (ESN high half,) sequence number (RFC 4106 §5). */
static size_t aad(const struct fp_esp_sa *sa, const uint8_t *hdr, uint64_t seq, uint8_t *out)
{
    memcpy(out, hdr, 4);
    if (sa->esn) {
        put64(out + 4, seq);
        return 12;
    }
    memcpy(out + 4, hdr + 4, 4);
    return 8;
}

static int aead_seal(struct fp_esp_sa *sa, const uint8_t *hdr, uint64_t seq,
                     const uint8_t *iv, uint8_t *data, size_t len, uint8_t *tag)
{
    EVP_CIPHER_CTX *c = sa->seal_cipher;
    uint8_t nonce[12], a[12];
    int n;
    memcpy(nonce, sa->salt, 4);
    memcpy(nonce + 4, iv, 8);
    size_t alen = aad(sa, hdr, seq, a);
    if (EVP_EncryptInit_ex(c, NULL, NULL, NULL, nonce) != 1) return -1;
    if (EVP_EncryptUpdate(c, NULL, &n, a, (int)alen) != 1) return -1;
    if (EVP_EncryptUpdate(c, data, &n, data, (int)len) != 1) return -1;
    if (EVP_EncryptFinal_ex(c, data + n, &n) != 1) return -1;
    return EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, tag) == 1 ? 0 : -1;
}

/* HMAC over ESP header, IV and ciphertext, then (ESN) the high half of the sequence
 * number (RFC 4303 §2.2.1, §3.3.2.1): the full 20 or 32 bytes in out. */
static int hmac(EVP_MAC_CTX *m, const struct fp_esp_sa *sa, const uint8_t *pkt, size_t len,
                uint64_t seq, uint8_t *out)
{
    size_t n;
    if (EVP_MAC_init(m, NULL, 0, NULL) != 1) return -1;
    if (EVP_MAC_update(m, pkt, len) != 1) return -1;
    if (sa->esn) {
        uint8_t hi[4];
        put32(hi, (uint32_t)(seq >> 32));
        if (EVP_MAC_update(m, hi, 4) != 1) return -1;
    }
    return EVP_MAC_final(m, out, &n, 64) == 1 ? 0 : -1;
}

long fp_esp_seal(struct fp_esp_sa *sa, uint8_t *p, size_t len, uint8_t next_header,
                 const uint8_t *iv)
{
    /* RFC 4303 §3.3.3: the counter must not cycle; the SA is used up. */
    uint64_t last = sa->esn ? UINT64_MAX : UINT32_MAX;
    if (sa->seq >= last || len > 65535) goto error;
    uint64_t seq = sa->seq + 1;
    size_t head = fp_esp_head(sa);
    uint8_t *pkt = p - head;
    put32(pkt, sa->spi);
    put32(pkt + 4, (uint32_t)seq);
    uint8_t *ivp = pkt + FP_ESP_HLEN;
    if (iv)
        memcpy(ivp, iv, (size_t)sa->iv_len);
    else if (next_iv(sa, seq, ivp) < 0)
        goto error;
    /* RFC 4303 §2.4 as the kernel pads (esp_output_fill_trailer): to the block size
     * with Pad Length and Next Header, pad bytes 1, 2, 3, ... */
    size_t b = (size_t)sa->block;
    size_t padlen = (b - (len + 2) % b) % b;
    uint8_t *t = p + len;
    for (size_t i = 0; i < padlen; i++) t[i] = (uint8_t)(i + 1);
    t[padlen] = (uint8_t)padlen;
    t[padlen + 1] = next_header;
    size_t clen = len + padlen + 2;
    uint8_t *icv = p + clen;
    if (sa->aead) {
        if (aead_seal(sa, pkt, seq, ivp, p, clen, icv) < 0) goto error;
    } else {
        EVP_CIPHER_CTX *c = sa->seal_cipher;
        int n;
        uint8_t mac[64];
        if (EVP_EncryptInit_ex(c, NULL, NULL, NULL, ivp) != 1) goto error;
        if (EVP_EncryptUpdate(c, p, &n, p, (int)clen) != 1) goto error;
        if (hmac(sa->seal_mac, sa, pkt, head + clen, seq, mac) < 0) goto error;
        memcpy(icv, mac, (size_t)sa->icv_len);
    }
    sa->seq = seq;
    sa->c[FP_ESP_TX_PACKETS]++;
    sa->c[FP_ESP_TX_BYTES] += len;
    return (long)(head + clen + (size_t)sa->icv_len);
error:
    sa->c[FP_ESP_TX_ERRORS]++;
    return -1;
}

#define drop(sa, why) (sa->drops[why]++, *reason = (why), -1)

/* The full sequence number of a received low half (RFC 4303 Appendix A2.2 with the
 * window W; without ESN the high half is 0). */
static uint64_t infer_seq(const struct fp_esp_sa *sa, uint32_t lo)
{
    if (!sa->esn) return lo;
    uint32_t tl = (uint32_t)sa->top, th = (uint32_t)(sa->top >> 32);
    uint32_t w = sa->window ? sa->window : 1;
    uint32_t bottom = tl - w + 1;
    if (tl >= w - 1) {
        /* the window lies within one sequence number subspace */
        if (lo < bottom) th++;
    } else if (lo >= bottom) {
        /* it spans two: a number above the bottom is from the previous subspace */
        th--;
    }
    return (uint64_t)th << 32 | lo;
}

/* RFC 4303 §3.4.3: 1 if seq is a duplicate or left of the window. */
static int replayed(const struct fp_esp_sa *sa, uint64_t seq)
{
    if (!sa->window) return 0;
    if (seq == 0 && !sa->esn) return 1; /* the first packet sent has number 1 */
    if (seq > sa->top) return 0;
    uint64_t diff = sa->top - seq;
    if (diff >= sa->window) return 1;
    return (int)(sa->bitmap[diff / 64] >> (diff % 64) & 1);
}

static void shift(uint64_t *bm, size_t words, uint64_t by)
{
    if (by >= (uint64_t)words * 64) {
        memset(bm, 0, words * sizeof(*bm));
        return;
    }
    size_t w = (size_t)(by / 64), b = (size_t)(by % 64);
    for (size_t i = words; i-- > 0;) {
        uint64_t v = i >= w ? bm[i - w] << b : 0;
        if (b && i >= w + 1) v |= bm[i - w - 1] >> (64 - b);
        bm[i] = v;
    }
}

static void advance(struct fp_esp_sa *sa, uint64_t seq)
{
    size_t words = (sa->window + 63) / 64;
    if (seq > sa->top) {
        if (words) shift(sa->bitmap, words, seq - sa->top);
        sa->top = seq;
        if (words) sa->bitmap[0] |= 1;
    } else if (words) {
        uint64_t diff = sa->top - seq;
        sa->bitmap[diff / 64] |= (uint64_t)1 << (diff % 64);
    }
}

int fp_esp_open(struct fp_esp_sa *sa, uint8_t *pkt, size_t len, uint8_t **payload,
                size_t *plen, uint8_t *next_header, int *reason)
{
    size_t head = fp_esp_head(sa), icv_len = (size_t)sa->icv_len;
    /* At least Pad Length and Next Header, and whole blocks for CBC. */
    if (len < head + icv_len + 2) return drop(sa, FP_ESP_DROP_TOO_SHORT);
    size_t clen = len - head - icv_len;
    if (clen % (size_t)sa->block && !sa->aead) return drop(sa, FP_ESP_DROP_TOO_SHORT);
    uint32_t lo = (uint32_t)pkt[4] << 24 | (uint32_t)pkt[5] << 16 | (uint32_t)pkt[6] << 8 | pkt[7];
    uint64_t seq = infer_seq(sa, lo);
    /* Checked before the ICV to reject a replay cheaply, the window is moved only
     * after it (§3.4.3). */
    if (replayed(sa, seq)) return drop(sa, FP_ESP_DROP_REPLAYED);
    uint8_t *ivp = pkt + FP_ESP_HLEN, *data = pkt + head, *icv = data + clen;
    int n;
    if (sa->aead) {
        EVP_CIPHER_CTX *c = sa->open_cipher;
        uint8_t nonce[12], a[12], tag[16];
        memcpy(nonce, sa->salt, 4);
        memcpy(nonce + 4, ivp, 8);
        memcpy(tag, icv, 16);
        size_t alen = aad(sa, pkt, seq, a);
        if (EVP_DecryptInit_ex(c, NULL, NULL, NULL, nonce) != 1 ||
            EVP_DecryptUpdate(c, NULL, &n, a, (int)alen) != 1 ||
            EVP_DecryptUpdate(c, data, &n, data, (int)clen) != 1 ||
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16, tag) != 1 ||
            EVP_DecryptFinal_ex(c, data + n, &n) != 1)
            return drop(sa, FP_ESP_DROP_AUTH_FAILED);
    } else {
        uint8_t mac[64];
        if (hmac(sa->open_mac, sa, pkt, head + clen, seq, mac) < 0 ||
            CRYPTO_memcmp(mac, icv, icv_len) != 0)
            return drop(sa, FP_ESP_DROP_AUTH_FAILED);
        EVP_CIPHER_CTX *c = sa->open_cipher;
        if (EVP_DecryptInit_ex(c, NULL, NULL, NULL, ivp) != 1 ||
            EVP_DecryptUpdate(c, data, &n, data, (int)clen) != 1)
            return drop(sa, FP_ESP_DROP_AUTH_FAILED);
    }
    size_t padlen = data[clen - 2];
    /* as the kernel (esp_remove_trailer): something must be left of the payload */
    if (padlen + 2 >= clen) return drop(sa, FP_ESP_DROP_BAD_PADDING);
    size_t body = clen - 2 - padlen;
    for (size_t i = 0; i < padlen; i++)
        if (data[body + i] != (uint8_t)(i + 1)) return drop(sa, FP_ESP_DROP_BAD_PADDING);
    advance(sa, seq);
    sa->c[FP_ESP_RX_PACKETS]++;
    sa->c[FP_ESP_RX_BYTES] += body;
    *payload = data;
    *plen = body;
    *next_header = data[clen - 1];
    return 0;
}

#endif /* FP_HAVE_ESP */

static uint32_t sum16(uint32_t acc, const uint8_t *p, size_t n)
{
    for (; n > 1; p += 2, n -= 2) acc += (uint32_t)p[0] << 8 | p[1];
    if (n) acc += (uint32_t)p[0] << 8;
    return acc;
}

uint16_t fp_udp_checksum(int family, const uint8_t *src, const uint8_t *dst,
                         const uint8_t *seg, size_t len)
{
    size_t alen = family == 6 ? 16 : 4;
    uint32_t acc = sum16(sum16(0, src, alen), dst, alen);
    /* IPv4 pseudo-header: zero, protocol, UDP length; IPv6: 32-bit length, protocol. */
    acc += 17 + (uint32_t)(len & 0xFFFF) + (uint32_t)(len >> 16);
    acc = sum16(acc, seg, len);
    while (acc >> 16) acc = (acc & 0xFFFF) + (acc >> 16);
    uint16_t v = (uint16_t)~acc;
    return v ? v : 0xFFFF; /* RFC 768: a computed 0 is sent as all ones */
}

static struct fp_esp_sa *path_lookup(const struct fp_esp_path *p, uint32_t spi)
{
    for (int i = 0; i < p->nin; i++)
        if (p->in[i]->spi == spi) return p->in[i];
    return NULL;
}

/* spi is one of the other tunnels' (p->foreign, sorted). */
static int path_foreign(const struct fp_esp_path *p, uint32_t spi)
{
    int lo = 0, hi = p->nforeign;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (p->foreign[mid] == spi) return 1;
        if (p->foreign[mid] < spi)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

long fp_esp_path_seal(struct fp_esp_path *p, uint8_t *d, size_t len, uint8_t **pkt)
{
    struct fp_esp_sa *sa = p->out;
    if (!sa) return -1;
    if (p->udp) {
        size_t ulen = len + 8;
        if (ulen > 65535) {
            sa->c[FP_ESP_TX_ERRORS]++;
            return -1;
        }
        d -= 8;
        d[0] = (uint8_t)(p->sport >> 8), d[1] = (uint8_t)p->sport;
        d[2] = (uint8_t)(p->dport >> 8), d[3] = (uint8_t)p->dport;
        d[4] = (uint8_t)(ulen >> 8), d[5] = (uint8_t)ulen;
        d[6] = d[7] = 0;
        if (p->csum) {
            uint16_t c = fp_udp_checksum(p->family, p->local, p->remote, d, ulen);
            d[6] = (uint8_t)(c >> 8), d[7] = (uint8_t)c;
        }
        len = ulen;
    }
    long n = fp_esp_seal(sa, d, len, p->udp ? 17 : 115, NULL);
    if (n >= 0) *pkt = d - fp_esp_head(sa);
    return n;
}

int fp_esp_path_open(struct fp_esp_path *p, uint8_t *pkt, size_t len, uint8_t **d, size_t *dlen,
                     int *reason)
{
    if (len < FP_ESP_HLEN) {
        if (p->quiet_unknown) return 1; /* counted by another tunnel */
        p->drops[FP_ESP_DROP_TOO_SHORT]++;
        *reason = FP_ESP_DROP_TOO_SHORT;
        return -1;
    }
    uint32_t spi = fp_esp_spi(pkt, len);
    struct fp_esp_sa *sa = path_lookup(p, spi);
    if (!sa) {
        /* Another tunnel's SPI: its socket has a copy. Unknown to every tunnel that
         * hears it: counted by one of them (proto/espdemux.py). */
        if (p->quiet_unknown || path_foreign(p, spi)) return 1;
        p->drops[FP_ESP_DROP_UNKNOWN_SPI]++;
        *reason = FP_ESP_DROP_UNKNOWN_SPI;
        return -1;
    }
    uint8_t nh;
    if (fp_esp_open(sa, pkt, len, d, dlen, &nh, reason) < 0) return -1;
    if (nh != (p->udp ? 17 : 115)) {
        /* counted on the SA, as EspInbound.open; the packet was received (rx_packets) */
        sa->drops[FP_ESP_DROP_BAD_NEXT_HEADER]++;
        *reason = FP_ESP_DROP_BAD_NEXT_HEADER;
        return -1;
    }
    if (p->udp) {
        if (*dlen < 8) {
            p->drops[FP_ESP_DROP_TOO_SHORT]++;
            *reason = FP_ESP_DROP_TOO_SHORT;
            return -1;
        }
        const uint8_t *u = *d;
        uint16_t sport = (uint16_t)(u[0] << 8 | u[1]), dport = (uint16_t)(u[2] << 8 | u[3]);
        if (sport != p->dport || dport != p->sport) return 1;
        *d += 8;
        *dlen -= 8;
    }
    return 0;
}

#ifndef FP_HAVE_ESP /* built without libcrypto */

int fp_esp_available(void)
{
    return 0;
}

int fp_esp_init(struct fp_esp_sa *sa, uint32_t spi, int alg, const uint8_t *enc_key,
                size_t enc_len, const uint8_t *auth_key, size_t auth_len, int esn,
                uint32_t window, char *err, size_t errlen)
{
    (void)spi, (void)alg, (void)enc_key, (void)enc_len, (void)auth_key, (void)auth_len;
    (void)esn, (void)window;
    memset(sa, 0, sizeof(*sa));
    snprintf(err, errlen, "the fast path was built without libcrypto (libssl-dev)");
    return -1;
}

void fp_esp_clear(struct fp_esp_sa *sa)
{
    (void)sa;
}

long fp_esp_seal(struct fp_esp_sa *sa, uint8_t *p, size_t len, uint8_t next_header,
                 const uint8_t *iv)
{
    (void)p, (void)len, (void)next_header, (void)iv;
    sa->c[FP_ESP_TX_ERRORS]++;
    return -1;
}

int fp_esp_open(struct fp_esp_sa *sa, uint8_t *pkt, size_t len, uint8_t **payload,
                size_t *plen, uint8_t *next_header, int *reason)
{
    (void)pkt, (void)len, (void)payload, (void)plen, (void)next_header;
    sa->drops[FP_ESP_DROP_AUTH_FAILED]++;
    *reason = FP_ESP_DROP_AUTH_FAILED;
    return -1;
}

#endif
