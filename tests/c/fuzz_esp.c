/* Mutation fuzzer for fp_esp.c, built by tests/differential/test_esp_fuzz.py with ASan
 * and UBSan: every packet handed to fp_esp_open / fp_esp_path_open sits in a heap block
 * of exactly its size, and every seal gets exactly fp_esp_head + len + fp_esp_tail
 * bytes, so any read or write out of bounds aborts. Every open must either deliver or
 * return a drop reason that was counted.
 *
 * usage: fuzz_esp ITERATIONS SEED     prints: opened N dropped N sealed N
 */
#include "fp_esp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static uint64_t total_drops(const struct fp_esp_sa *sa, const struct fp_esp_path *p)
{
    uint64_t n = 0;
    for (int i = 0; i < FP_NESPDROPS; i++) n += sa->drops[i] + (p ? p->drops[i] : 0);
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 3 || !fp_esp_available()) return 2;
    long iters = atol(argv[1]);
    rng = (uint64_t)atol(argv[2]) * 0x9E3779B97F4A7C15ull + 1;
    static const struct { int alg; size_t klen, alen; } algs[] = {
        { FP_ESP_AES_GCM, 20, 0 }, { FP_ESP_AES_GCM, 36, 0 },
        { FP_ESP_CHACHA20_POLY1305, 36, 0 }, { FP_ESP_AES_CBC_SHA256, 16, 32 },
        { FP_ESP_AES_CBC_SHA1, 32, 20 },
    };
    uint64_t opened = 0, dropped = 0, sealed = 0;
    char err[128];
    for (long it = 0; it < iters; it++) {
        int a = (int)(rnd() % 5), esn = (int)(rnd() & 1);
        uint32_t window = rnd() % 3 == 0 ? 0 : rnd() % 200;
        uint8_t key[36], akey[32];
        for (size_t i = 0; i < sizeof(key); i++) key[i] = (uint8_t)rnd();
        for (size_t i = 0; i < sizeof(akey); i++) akey[i] = (uint8_t)rnd();
        struct fp_esp_sa tx, rx;
        if (fp_esp_init(&tx, 7, algs[a].alg, key, algs[a].klen, akey, algs[a].alen, esn, 0, err,
                        sizeof(err)) ||
            fp_esp_init(&rx, 7, algs[a].alg, key, algs[a].klen, akey, algs[a].alen, esn, window,
                        err, sizeof(err))) {
            fprintf(stderr, "init: %s\n", err);
            return 1;
        }
        struct fp_esp_path path;
        memset(&path, 0, sizeof(path));
        path.udp = (int)(rnd() & 1);
        path.family = rnd() & 1 ? 6 : 4;
        path.sport = 1701, path.dport = 1701, path.csum = (int)(rnd() & 1);
        path.out = &tx;
        path.in[0] = &rx;
        path.nin = 1;
        /* Other tunnels' SPIs (sorted, in a heap block of its own: the bisection must
         * stay inside it), and sometimes another tunnel counts unknown SPIs. */
        int nforeign = (int)(rnd() % 5);
        uint32_t *foreign = malloc(nforeign ? (size_t)nforeign * sizeof(uint32_t) : 1);
        for (int i = 0; i < nforeign; i++) foreign[i] = (uint32_t)(8 + i * (1 + rnd() % 3));
        path.foreign = foreign, path.nforeign = nforeign;
        path.quiet_unknown = (int)(rnd() % 4 == 0);
        tx.seq = rnd() % 4 == 0 ? (esn ? 0xFFFFFF00ull : 0) : rnd();
        for (int k = 0; k < 8; k++) {
            size_t len = rnd() % 4 == 0 ? rnd() % 4 : rnd() % 1600;
            size_t head = fp_esp_path_head(&path), cap = head + len + fp_esp_tail(&tx);
            uint8_t *buf = malloc(cap ? cap : 1);
            for (size_t i = 0; i < cap; i++) buf[i] = (uint8_t)rnd();
            uint8_t *pkt;
            long n = fp_esp_path_seal(&path, buf + head, len, &pkt);
            if (n < 0) {
                free(buf);
                continue;
            }
            sealed++;
            for (int m = 0; m < 6; m++) {
                size_t plen = (size_t)n;
                uint8_t *copy;
                switch (rnd() % 6) {
                case 0: /* intact (maybe a replay the second time) */
                    break;
                case 1: /* truncated */
                    plen = rnd() % (plen + 1);
                    break;
                case 2: /* extended with junk */
                    plen += rnd() % 40;
                    break;
                default:
                    break;
                }
                copy = malloc(plen ? plen : 1);
                for (size_t i = 0; i < plen; i++) copy[i] = i < (size_t)n ? pkt[i] : (uint8_t)rnd();
                for (int f = (int)(rnd() % 3); f > 0 && plen; f--) copy[rnd() % plen] ^= (uint8_t)(1u << (rnd() % 8));
                if (rnd() % 3 == 0 && plen > 8) copy[plen - 1 - rnd() % 8] = (uint8_t)rnd();
                uint64_t before = total_drops(&rx, &path);
                uint8_t *d;
                size_t dlen;
                int reason = -1;
                int rc = rnd() & 1 ? fp_esp_path_open(&path, copy, plen, &d, &dlen, &reason)
                                   : fp_esp_open(&rx, copy, plen, &d, &dlen, (uint8_t[1]){ 0 }, &reason);
                if (rc == 0) {
                    volatile uint8_t x = 0;
                    for (size_t i = 0; i < dlen; i++) x ^= d[i]; /* inside copy, or ASan aborts */
                    opened++;
                } else if (rc > 0 && total_drops(&rx, &path) != before) {
                    fprintf(stderr, "a packet left to another tunnel was counted\n");
                    return 1;
                } else if (rc < 0) {
                    if (reason < 0 || reason >= FP_NESPDROPS || total_drops(&rx, &path) != before + 1) {
                        fprintf(stderr, "drop not counted once (reason %d)\n", reason);
                        return 1;
                    }
                    dropped++;
                }
                free(copy);
            }
            free(buf);
        }
        fp_esp_clear(&tx);
        fp_esp_clear(&rx);
        free(foreign);
    }
    printf("opened %llu dropped %llu sealed %llu\n", (unsigned long long)opened,
           (unsigned long long)dropped, (unsigned long long)sealed);
    return 0;
}
