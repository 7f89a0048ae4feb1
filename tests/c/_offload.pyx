# cython: boundscheck=False, wraparound=False
"""Thin wrapper around l2tpv3/fast/offload.c, for tests and micro-benchmarks only.

The data path calls the C functions directly from its own extension; this module exists so
the C code can be checked from Python against scapy and the kernel. It is not part of the
package: tests/support/offload_ext.py builds it on first use (cached under build/).
"""

from libc.stdint cimport uint8_t, uint16_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from fp_shared cimport FP_MAX_SEGS  # generated next to the build by cgen.py


cdef extern from "<linux/virtio_net.h>":
    struct virtio_net_hdr:
        uint8_t flags
        uint8_t gso_type
        uint16_t hdr_len
        uint16_t gso_size
        uint16_t csum_start
        uint16_t csum_offset


cdef extern from "offload.h":
    int l2o_complete_csum(const virtio_net_hdr *vh, uint8_t *frame, size_t len) nogil
    int l2o_segment(const virtio_net_hdr *vh, const uint8_t *frame, size_t len,
                    size_t max_frame, uint8_t *out, size_t stride, size_t *lens,
                    int max_segs) nogil
    ctypedef int (*l2o_emit_fn)(void *ctx, const uint8_t *buf, size_t len) noexcept nogil
    struct l2o_gro:
        size_t vnet_hdr_len
        unsigned long long merged
        unsigned long long superframes
        unsigned long long passed
        unsigned long long bad_csum
    void l2o_gro_init(l2o_gro *g, size_t vnet_hdr_len) nogil
    int l2o_gro_add(l2o_gro *g, const uint8_t *frame, size_t len, l2o_emit_fn emit,
                    void *ctx) nogil
    int l2o_gro_flush(l2o_gro *g, l2o_emit_fn emit, void *ctx) nogil


VNET_HDR_LEN = sizeof(virtio_net_hdr)
MAX_SEGS = FP_MAX_SEGS  # the engine cuts at most this many (constants.py)


cdef int _vnet(bytes vnet_hdr, virtio_net_hdr *vh) except -1:
    if len(vnet_hdr) < <Py_ssize_t>sizeof(virtio_net_hdr):
        raise ValueError(f"vnet header needs {sizeof(virtio_net_hdr)} bytes")
    memcpy(vh, <const uint8_t *>vnet_hdr, sizeof(virtio_net_hdr))
    return 0


def complete_csum(bytes vnet_hdr, bytes frame):
    """Return the frame with its NEEDS_CSUM checksum completed; ValueError if out of range."""
    cdef virtio_net_hdr vh
    _vnet(vnet_hdr, &vh)
    cdef bytearray buf = bytearray(frame)
    cdef uint8_t *p = buf
    if l2o_complete_csum(&vh, p, len(buf)) != 0:
        raise ValueError("checksum start/offset out of range")
    return bytes(buf)


def segment(bytes vnet_hdr, bytes frame, size_t max_frame, int max_segs=MAX_SEGS):
    """Segment a TSO super-frame; list of frames. ValueError (-1) or OverflowError (-2)."""
    cdef virtio_net_hdr vh
    _vnet(vnet_hdr, &vh)
    cdef size_t stride = max_frame if max_frame else 1
    cdef uint8_t *out = <uint8_t *>malloc(stride * <size_t>max_segs if max_segs > 0 else 1)
    cdef size_t *lens = <size_t *>malloc(sizeof(size_t) * (max_segs if max_segs > 0 else 1))
    cdef const uint8_t *f = frame
    cdef size_t flen = len(frame)
    cdef int n
    if out == NULL or lens == NULL:
        free(out)
        free(lens)
        raise MemoryError()
    try:
        with nogil:
            n = l2o_segment(&vh, f, flen, max_frame, out, stride, lens, max_segs)
        if n == -1:
            raise ValueError("malformed or unsupported super-frame")
        if n == -2:
            raise OverflowError("more than max_segs segments needed")
        return [out[i * stride : i * stride + lens[i]] for i in range(n)]
    finally:
        free(out)
        free(lens)


cdef int _collect(void *ctx, const uint8_t *buf, size_t n) noexcept nogil:
    with gil:
        (<list>ctx).append(buf[:n])
    return 0


cdef class Coalescer:
    """One l2o_gro context; add() returns the buffers emitted (vnet header + frame)."""

    cdef l2o_gro *g

    def __cinit__(self, size_t vnet_hdr_len=10):
        self.g = <l2o_gro *>malloc(sizeof(l2o_gro))
        if self.g == NULL:
            raise MemoryError()
        l2o_gro_init(self.g, vnet_hdr_len)

    def __dealloc__(self):
        free(self.g)

    def add(self, bytes frame):
        cdef list out = []
        if l2o_gro_add(self.g, frame, len(frame), _collect, <void *>out) != 0:
            raise ValueError("frame too long")
        return out

    def flush(self):
        cdef list out = []
        l2o_gro_flush(self.g, _collect, <void *>out)
        return out

    @property
    def stats(self):
        return {
            "merged": self.g.merged,
            "superframes": self.g.superframes,
            "passed": self.g.passed,
            "bad_csum": self.g.bad_csum,
        }


def coalesce(frames, size_t vnet_hdr_len=10):
    """Feed frames through one GRO context, flush at the end; buffers as given to emit."""
    c = Coalescer(vnet_hdr_len)
    out = []
    for f in frames:
        out.extend(c.add(f))
    out.extend(c.flush())
    return out


def gro_context_size():
    return sizeof(l2o_gro)


cdef int _count(void *ctx, const uint8_t *buf, size_t n) noexcept nogil:
    (<size_t *>ctx)[0] += 1
    return 0


def bench_segment(bytes vnet_hdr, bytes frame, size_t max_frame, long iterations):
    """Segment the same super-frame `iterations` times in C; total segments produced."""
    cdef virtio_net_hdr vh
    _vnet(vnet_hdr, &vh)
    cdef int max_segs = MAX_SEGS
    cdef uint8_t *out = <uint8_t *>malloc(max_frame * <size_t>max_segs)
    cdef size_t *lens = <size_t *>malloc(sizeof(size_t) * max_segs)
    cdef const uint8_t *f = frame
    cdef size_t flen = len(frame)
    cdef long total = 0, i
    cdef int n = 0
    if out == NULL or lens == NULL:
        free(out)
        free(lens)
        raise MemoryError()
    with nogil:
        for i in range(iterations):
            n = l2o_segment(&vh, f, flen, max_frame, out, max_frame, lens, max_segs)
            if n < 0:
                break
            total += n
    free(out)
    free(lens)
    if n < 0:
        raise ValueError("segment failed")
    return total


def bench_gro(frames, long iterations, size_t vnet_hdr_len=10):
    """Offer the frames (then flush) `iterations` times in C; (emitted buffers, merged)."""
    cdef list keep = [bytes(f) for f in frames]
    cdef size_t k, nframes = len(keep)
    cdef const uint8_t **ptrs = <const uint8_t **>malloc(sizeof(uint8_t *) * (nframes or 1))
    cdef size_t *lens = <size_t *>malloc(sizeof(size_t) * (nframes or 1))
    cdef l2o_gro *g = <l2o_gro *>malloc(sizeof(l2o_gro))
    cdef size_t emitted = 0
    cdef long i
    if ptrs == NULL or lens == NULL or g == NULL:
        free(ptrs)
        free(lens)
        free(g)
        raise MemoryError()
    for k in range(nframes):
        ptrs[k] = <const uint8_t *>(<bytes>keep[k])
        lens[k] = len(<bytes>keep[k])
    l2o_gro_init(g, vnet_hdr_len)
    with nogil:
        for i in range(iterations):
            for k in range(nframes):
                l2o_gro_add(g, ptrs[k], lens[k], _count, &emitted)
            l2o_gro_flush(g, _count, &emitted)
    merged = g.merged
    free(ptrs)
    free(lens)
    free(g)
    return emitted, merged
