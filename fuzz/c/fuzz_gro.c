/* libFuzzer target: userspace GRO (l2o_gro_add, l2o_gro_flush), offload.c.
 *
 * Input: one byte (bit 0: vnet header of 12 bytes, else 10), then records: a control
 * byte (bit 0: flush after the frame; bit 1: the emit callback reports an error for
 * this record), a u16 big-endian length and the frame (the last record takes what is
 * left). Each frame sits in a heap block of exactly its size.
 *
 * Rules: every frame offered is accounted for, once: it is emitted alone (zero vnet
 * header), or it is one of the segments of an emitted super-frame, or l2o_gro_add said
 * it is too long (-1). A super-frame carries NEEDS_CSUM with csum_start at its TCP
 * header and offset 16, a gso_size and a gso_type matching its IP version, fits the
 * vnet header + 64 KiB, and when completed (l2o_complete_csum) and segmented again by
 * l2o_segment at its gso_size it gives back as many segments, each with right
 * checksums (tcpcheck.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "offload.h"
#include "tcpcheck.h"

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "INVARIANT: " __VA_ARGS__);                                   \
            fprintf(stderr, "\n");                                                        \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

struct ctx {
    size_t vlen;
    size_t frames_out; /* frames accounted for by what was emitted */
    int fail;
};

static int emit(void *p, const uint8_t *buf, size_t len)
{
    struct ctx *c = p;
    CHECK(len >= c->vlen, "emitted %zu bytes", len);
    CHECK(len <= L2O_GRO_BUFSZ, "emitted %zu bytes > L2O_GRO_BUFSZ", len);
    struct virtio_net_hdr vh;
    memcpy(&vh, buf, sizeof(vh));
    const uint8_t *frame = buf + c->vlen;
    size_t flen = len - c->vlen;
    if (c->vlen == 12) CHECK(buf[10] == 0 && buf[11] == 0, "num_buffers not 0");
    if (vh.gso_type == VIRTIO_NET_HDR_GSO_NONE) {
        static const uint8_t zero[sizeof(vh)];
        CHECK(memcmp(&vh, zero, sizeof(vh)) == 0, "a single frame with a non-zero vnet header");
        volatile uint8_t x = 0;
        for (size_t i = 0; i < flen; i++) x ^= frame[i];
        c->frames_out++;
        return c->fail;
    }
    struct tc_frame t;
    CHECK(tc_parse(frame, flen, &t) == 0, "a super-frame the checker cannot read");
    CHECK(vh.gso_type == (t.v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4),
          "gso_type %u for an IPv%d frame", vh.gso_type, t.v6 ? 6 : 4);
    CHECK(vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM, "a super-frame without NEEDS_CSUM");
    CHECK(vh.csum_start == t.l4 && vh.csum_offset == 16, "csum_start %u offset %u",
          vh.csum_start, vh.csum_offset);
    CHECK(vh.gso_size > 0 && t.end == flen, "gso_size %u, IP end %zu of %zu", vh.gso_size,
          t.end, flen);
    size_t payload = t.end - t.payload;
    size_t segs = (payload + vh.gso_size - 1) / vh.gso_size;
    CHECK(segs >= 2, "a super-frame of %zu segment(s)", segs);
    uint8_t *copy = malloc(flen);
    memcpy(copy, frame, flen);
    CHECK(l2o_complete_csum(&vh, copy, flen) == 0, "cannot complete the super-frame's checksum");
    CHECK(tc_csum_ok(copy, &t), "completed super-frame has a bad checksum");
    size_t max_frame = t.payload + vh.gso_size;
    uint8_t *segbuf = malloc(max_frame * segs);
    size_t *seglens = malloc(sizeof(size_t) * segs);
    int n = l2o_segment(&vh, frame, flen, max_frame, segbuf, max_frame, seglens, (int)segs);
    CHECK(n == (int)segs, "re-segmenting gave %d, want %zu", n, segs);
    for (int i = 0; i < n; i++) {
        struct tc_frame s;
        CHECK(tc_parse(segbuf + (size_t)i * max_frame, seglens[i], &s) == 0 &&
                  tc_csum_ok(segbuf + (size_t)i * max_frame, &s),
              "re-segmented frame %d is bad", i);
    }
    free(seglens);
    free(segbuf);
    free(copy);
    c->frames_out += segs;
    return c->fail;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct l2o_gro *g;
    if (!g) g = malloc(sizeof(*g));
    if (!size) return 0;
    struct ctx c = {(data[0] & 1) ? 12 : 10, 0, 0};
    l2o_gro_init(g, c.vlen);
    size_t pos = 1, frames_in = 0;
    while (pos < size) {
        uint8_t ctl = data[pos++];
        size_t len = 0;
        if (pos < size) len = (size_t)data[pos++] << 8;
        if (pos < size) len |= data[pos++];
        if (len > size - pos) len = size - pos;
        uint8_t *frame = malloc(len ? len : 1);
        memcpy(frame, data + pos, len);
        pos += len;
        c.fail = (ctl & 2) ? 1 : 0;
        int rc = l2o_gro_add(g, frame, len, emit, &c);
        free(frame);
        if (rc == -1 && len > L2O_GRO_BUFSZ - c.vlen) {
            /* too long: not emitted, by contract */
        } else {
            frames_in++;
        }
        if (ctl & 1) l2o_gro_flush(g, emit, &c);
    }
    c.fail = 0;
    l2o_gro_flush(g, emit, &c);
    CHECK(g->nflows == 0, "%u flows pending after a flush", g->nflows);
    CHECK(c.frames_out == frames_in, "%zu frames offered, %zu emitted", frames_in, c.frames_out);
    return 0;
}
