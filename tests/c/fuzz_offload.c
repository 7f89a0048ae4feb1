/* Mutation fuzzer for offload.c, built by tests/test_offload_fuzz.py with ASan and UBSan:
 * every input sits in a heap block of exactly its size and every output area is exactly as
 * large as the API promises to use, so any read or write out of bounds aborts.
 *
 * usage: fuzz_offload CORPUS ITERATIONS SEED
 * CORPUS: records of u32 length (host order), 10-byte vnet header, frame.
 */
#include "offload.h"

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

static size_t emitted;

static int sink(void *ctx, const uint8_t *buf, size_t len)
{
    (void)ctx;
    volatile uint8_t x = 0;
    for (size_t i = 0; i < len; i++) /* touch every byte handed out */
        x ^= buf[i];
    emitted++;
    return (int)(rnd() % 64 == 0); /* sometimes report an error, it must not matter */
}

struct rec {
    struct virtio_net_hdr vh;
    uint8_t *frame;
    size_t len;
};

static void mutate(struct rec *r)
{
    switch (rnd() % 8) {
    case 0:
        r->len = r->len ? rnd() % r->len : 0; /* truncate */
        break;
    case 1:
    case 2:
        for (int k = 1 + (int)(rnd() % 4); k > 0 && r->len; k--)
            r->frame[rnd() % r->len] ^= (uint8_t)(1u << (rnd() % 8));
        break;
    case 3:
        r->vh.hdr_len = (uint16_t)rnd();
        break;
    case 4:
        r->vh.csum_start = (uint16_t)(rnd() % 200);
        r->vh.csum_offset = (uint16_t)(rnd() % 40);
        break;
    case 5:
        r->vh.gso_size = (uint16_t)(rnd() % 3000);
        break;
    case 6:
        r->vh.gso_type = (uint8_t)rnd();
        r->vh.flags = (uint8_t)rnd();
        break;
    default:
        if (r->len > 20) /* random header bytes: lengths, ihl, doff */
            r->frame[12 + rnd() % 50 % (r->len - 12)] = (uint8_t)rnd();
        break;
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s CORPUS ITERATIONS SEED\n", argv[0]);
        return 2;
    }
    FILE *fp = fopen(argv[1], "rb");
    if (!fp) {
        perror(argv[1]);
        return 2;
    }
    struct rec corpus[256];
    int n = 0;
    uint32_t l;
    while (n < 256 && fread(&l, 4, 1, fp) == 1) {
        corpus[n].frame = malloc(l ? l : 1);
        if (fread(&corpus[n].vh, 10, 1, fp) != 1 || fread(corpus[n].frame, 1, l, fp) != l)
            return 2;
        corpus[n].len = l;
        n++;
    }
    fclose(fp);
    if (!n)
        return 2;
    long iters = atol(argv[2]);
    rng = (uint64_t)atol(argv[3]) * 0x9e3779b97f4a7c15ull + 1;
    struct l2o_gro *g = malloc(sizeof *g);
    l2o_gro_init(g, rnd() % 2 ? 12 : 10);
    long ok = 0, bad = 0;
    for (long it = 0; it < iters; it++) {
        struct rec r = corpus[rnd() % (uint32_t)n];
        uint8_t *copy = malloc(r.len ? r.len : 1);
        memcpy(copy, r.frame, r.len);
        r.frame = copy;
        for (int k = (int)(rnd() % 3); k > 0; k--)
            mutate(&r);
        uint8_t *exact = malloc(r.len ? r.len : 1); /* block of exactly len bytes */
        memcpy(exact, r.frame, r.len);

        size_t max_frame = 60 + rnd() % 1600;
        int max_segs = 1 + (int)(rnd() % 64);
        size_t stride = max_frame + rnd() % 3;
        uint8_t *out = malloc(stride * (size_t)max_segs);
        size_t *lens = malloc(sizeof(size_t) * (size_t)max_segs);
        int s = l2o_segment(&r.vh, exact, r.len, max_frame, out, stride, lens, max_segs);
        if (s > 0) {
            ok++;
            for (int i = 0; i < s; i++) {
                if (lens[i] > max_frame) {
                    fprintf(stderr, "segment %d of %zu bytes > %zu\n", i, lens[i], max_frame);
                    return 1;
                }
                l2o_gro_add(g, out + (size_t)i * stride, lens[i], sink, NULL);
            }
        } else {
            bad++;
            if (s != -1 && s != -2)
                return 1;
        }
        free(out);
        free(lens);
        l2o_complete_csum(&r.vh, exact, r.len);
        l2o_gro_add(g, exact, r.len, sink, NULL);
        if (rnd() % 16 == 0)
            l2o_gro_flush(g, sink, NULL);
        free(exact);
        free(copy);
    }
    l2o_gro_flush(g, sink, NULL);
    printf("iterations %ld segmented %ld rejected %ld emitted %zu merged %llu\n", iters, ok, bad,
           emitted, (unsigned long long)g->merged);
    free(g);
    for (int i = 0; i < n; i++)
        free(corpus[i].frame);
    return 0;
}
