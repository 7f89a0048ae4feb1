/* libFuzzer target: TCP segmentation of a TAP super-frame (l2o_segment) and checksum
 * completion (l2o_complete_csum), offload.c.
 *
 * Input: a 10-byte struct virtio_net_hdr (host order), 2 bytes choosing max_frame
 * (60..1659) and max_segs (1..32), then the frame. The frame sits in a heap block of
 * exactly its size and the output area is exactly stride * max_segs bytes, so any access
 * out of bounds aborts under AddressSanitizer.
 *
 * Rules for a super-frame that was segmented (n > 0): every segment fits max_frame, is a
 * TCP frame with right IPv4 header and TCP checksums (tcpcheck.h, independent of
 * offload.c), the sequence numbers follow on, and the payloads put together are the
 * super-frame's payload byte for byte. Otherwise the result is -1 or -2.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct virtio_net_hdr vh;
    if (size < sizeof(vh) + 2) return 0;
    memcpy(&vh, data, sizeof(vh));
    size_t max_frame = 60 + (size_t)(data[10] | (data[11] & 0x07) << 8) % 1600;
    int max_segs = 1 + (data[11] >> 3);
    size_t len = size - sizeof(vh) - 2;
    uint8_t *frame = malloc(len ? len : 1);
    memcpy(frame, data + sizeof(vh) + 2, len);

    size_t stride = max_frame + (data[11] & 1);
    uint8_t *out = malloc(stride * (size_t)max_segs);
    size_t *lens = malloc(sizeof(size_t) * (size_t)max_segs);
    int n = l2o_segment(&vh, frame, len, max_frame, out, stride, lens, max_segs);
    CHECK(n == -1 || n == -2 || (n >= 1 && n <= max_segs), "l2o_segment returned %d", n);
    if (n > 0) {
        struct tc_frame in;
        CHECK(tc_parse(frame, len, &in) == 0, "a frame the checker cannot read was segmented");
        size_t want = in.end - in.payload, got = 0;
        uint32_t seq = in.seq;
        for (int i = 0; i < n; i++) {
            const uint8_t *seg = out + (size_t)i * stride;
            struct tc_frame t;
            CHECK(lens[i] <= max_frame, "segment %d: %zu bytes > max_frame %zu", i, lens[i],
                  max_frame);
            CHECK(tc_parse(seg, lens[i], &t) == 0, "segment %d is not a TCP frame", i);
            CHECK(t.end == lens[i], "segment %d: IP length disagrees with the frame", i);
            CHECK(tc_csum_ok(seg, &t), "segment %d: bad checksum", i);
            CHECK(t.seq == seq, "segment %d: seq %u, want %u", i, t.seq, seq);
            size_t plen = t.end - t.payload;
            CHECK(got + plen <= want, "segments carry more than the super-frame");
            CHECK(memcmp(seg + t.payload, frame + in.payload + got, plen) == 0,
                  "segment %d: payload differs", i);
            got += plen;
            seq += (uint32_t)plen;
        }
        CHECK(got == want, "segments carry %zu of %zu payload bytes", got, want);
    }
    /* checksum completion, in place, on the same bytes */
    int rc = l2o_complete_csum(&vh, frame, len);
    CHECK(rc == 0 || rc == -1, "l2o_complete_csum returned %d", rc);
    free(lens);
    free(out);
    free(frame);
    return 0;
}
