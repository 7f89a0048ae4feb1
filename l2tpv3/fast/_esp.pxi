# ESP (issue 9): the SA of proto/esp.py on fp_esp.c (libcrypto). Included by
# _fastpath.pyx; kept in its own file so the ESP binding stays apart from the rest.

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport UINT64_MAX, uint16_t

from l2tpv3.fast.fp_shared cimport FP_NESPCOUNTERS, FP_NESPDROPS

cdef extern from "fp_esp.h" nogil:
    enum:
        FP_ESP_AES_GCM
        FP_ESP_CHACHA20_POLY1305
        FP_ESP_AES_CBC_SHA256
        FP_ESP_AES_CBC_SHA1
        FP_ESP_MAX_WINDOW
    struct fp_esp_sa:
        uint32_t spi
        int esn
        uint32_t window
        int iv_len
        int icv_len
        int block
        int aead
        uint64_t seq
        uint64_t iv_ctr
        uint64_t iv_limit
        uint64_t top
        uint64_t c[FP_NESPCOUNTERS]
        uint64_t drops[FP_NESPDROPS]
    int fp_esp_available()
    int fp_esp_init(fp_esp_sa *sa, uint32_t spi, int alg, const uint8_t *enc_key,
                    size_t enc_len, const uint8_t *auth_key, size_t auth_len, int esn,
                    uint32_t window, char *err, size_t errlen)
    void fp_esp_clear(fp_esp_sa *sa)
    size_t fp_esp_head(const fp_esp_sa *sa)
    size_t fp_esp_tail(const fp_esp_sa *sa)
    long fp_esp_seal(fp_esp_sa *sa, uint8_t *p, size_t len, uint8_t next_header,
                     const uint8_t *iv)
    int fp_esp_open(fp_esp_sa *sa, uint8_t *pkt, size_t len, uint8_t **payload,
                    size_t *plen, uint8_t *next_header, int *reason)
    enum:
        FP_ESP_MAX_IN
    struct fp_esp_path:
        int udp
        int family
        uint8_t local[16]
        uint8_t remote[16]
        uint16_t sport
        uint16_t dport
        int csum
        fp_esp_sa *out
        fp_esp_sa *in_ "in"[FP_ESP_MAX_IN]
        int nin
        const uint32_t *foreign
        int nforeign
        int quiet_unknown
        uint64_t drops[FP_NESPDROPS]
    size_t fp_esp_path_head(const fp_esp_path *p)
    long fp_esp_path_seal(fp_esp_path *p, uint8_t *d, size_t len, uint8_t **pkt)
    int fp_esp_path_open(fp_esp_path *p, uint8_t *pkt, size_t len, uint8_t **d, size_t *dlen,
                         int *reason)

# Built with libcrypto: ESP runs in C. Without it (no openssl/evp.h at build time) the
# SA class cannot be made and encrypted tunnels run on the Python path.
HAVE_ESP = bool(fp_esp_available())

cdef object _esp_mod = None


cdef object _esp():
    """proto/esp.py (the reference: names, key lengths, error type), imported when the
    first SA is made: it needs the `cryptography` package, the rest of the fast path
    does not."""
    global _esp_mod
    if _esp_mod is None:
        from l2tpv3.proto import esp
        _esp_mod = esp
    return _esp_mod


cdef class EspSA:
    """proto/esp.py EspSA on a C struct (fp_esp.c, libcrypto): the same constructor,
    attributes, seal/open, counters and drop reasons; see that class for the rules."""

    cdef fp_esp_sa sa
    cdef bint _init
    cdef readonly str alg
    cdef readonly object auth
    cdef readonly bint esn
    cdef readonly uint32_t replay_window
    cdef readonly int iv_len
    cdef readonly int icv_len
    cdef readonly int block
    cdef readonly bint aead

    def __cinit__(self):
        self._init = False

    def __init__(self, spi, str alg, key, auth_key=None, auth=None, *, esn=False,
                 replay_window=0):
        cdef char err[200]
        cdef const uint8_t[:] k
        cdef const uint8_t[:] a
        cdef const uint8_t *ap = NULL
        cdef size_t alen = 0
        cdef int code
        m = _esp()
        # The reference's checks and messages, in its order (never a key byte).
        if not 0 <= spi <= 0xFFFFFFFF:
            raise m.EspKeyError("SPI must be 0..0xffffffff")
        if not 0 <= replay_window <= m.MAX_REPLAY_WINDOW:
            raise m.EspKeyError(f"replay_window must be 0..{m.MAX_REPLAY_WINDOW}")
        if alg in m.AEAD_ALGS:
            if auth is not None or auth_key:
                raise m.EspKeyError(f"{alg} is an AEAD: no auth algorithm")
            if len(key) not in m.AEAD_KEY_LENS[alg]:
                raise m.EspKeyError(_esp_len_error(m, alg, len(key)))
            code = FP_ESP_AES_GCM if alg == m.AEAD_GCM else FP_ESP_CHACHA20_POLY1305
        elif alg in m.ENC_ALGS:
            if auth not in m.AUTH_ALGS:
                raise m.EspKeyError(f"{alg} needs auth {' or '.join(m.AUTH_ALGS)}")
            if len(key) not in m.ENC_KEY_LENS[alg]:
                raise m.EspKeyError(_esp_len_error(m, alg, len(key)))
            if auth_key is None or len(auth_key) not in m.AUTH_KEY_LENS[auth]:
                raise m.EspKeyError(
                    _esp_len_error(m, auth, 0 if auth_key is None else len(auth_key)))
            code = FP_ESP_AES_CBC_SHA256 if auth == m.AUTH_SHA256 else FP_ESP_AES_CBC_SHA1
            a = auth_key
            ap = &a[0]
            alen = a.shape[0]
        else:
            raise m.EspKeyError(f"unknown algorithm {alg}")
        k = key
        if fp_esp_init(&self.sa, spi, code, &k[0], k.shape[0], ap, alen, esn, replay_window,
                       err, sizeof(err)) < 0:
            raise m.EspKeyError(err.decode())
        self._init = True
        self.alg = alg
        self.auth = auth
        self.esn = bool(esn)
        self.replay_window = replay_window
        self.iv_len = self.sa.iv_len
        self.icv_len = self.sa.icv_len
        self.block = self.sa.block
        self.aead = bool(self.sa.aead)

    def __dealloc__(self):
        if self._init:
            fp_esp_clear(&self.sa)

    def __repr__(self):
        # No key material, ever (docs/security.md).
        return f"EspSA(spi=0x{self.sa.spi:08x}, alg={self.alg!r}, auth={self.auth!r})"

    @property
    def spi(self):
        return self.sa.spi

    @property
    def overhead(self):
        return 8 + self.iv_len + self.block - 1 + 2 + self.icv_len

    @property
    def seq(self):
        """The last sequence number sent; the first packet carries 1."""
        return self.sa.seq

    @seq.setter
    def seq(self, uint64_t value):
        self.sa.seq = value

    @property
    def iv_counter(self):
        """The last AEAD IV used."""
        return self.sa.iv_ctr

    @iv_counter.setter
    def iv_counter(self, uint64_t value):
        self.sa.iv_ctr = value

    @property
    def iv_limit(self):
        return None if self.sa.iv_limit == UINT64_MAX else self.sa.iv_limit

    @iv_limit.setter
    def iv_limit(self, value):
        self.sa.iv_limit = UINT64_MAX if value is None else value

    def grant_ivs(self, first, last):
        """Allow the AEAD IVs first..last (from a reservation already on disk)."""
        if not 1 <= first <= last <= UINT64_MAX:
            raise ValueError("bad IV range")
        self.sa.iv_ctr = first - 1
        self.sa.iv_limit = last

    @property
    def ivs_left(self):
        if not self.sa.aead or self.sa.iv_limit == UINT64_MAX:
            return None
        return self.sa.iv_limit - self.sa.iv_ctr

    @property
    def top(self):
        """The highest sequence number received and authenticated."""
        return self.sa.top

    @top.setter
    def top(self, uint64_t value):
        # As the reference: moves the window's right edge, keeps its bits.
        self.sa.top = value

    @property
    def counters(self):
        return _esp().EspCounters(
            **{name: self.sa.c[i] for i, name in enumerate(ESP_COUNTER_NAMES)})

    @property
    def drops(self):
        return {name: self.sa.drops[i] for i, name in enumerate(ESP_DROP_REASONS)}

    def drop(self, str reason):
        """Count a drop of this SA's traffic (also the callers': bad Next Header)."""
        self.sa.drops[ESP_DROP_REASONS.index(reason)] += 1
        return reason

    def seal(self, payload, int next_header, iv=None):
        """The ESP packet for payload, or None when this SA cannot send (counted in
        tx_errors): see proto/esp.py EspSA.seal."""
        cdef const uint8_t[:] view = payload
        cdef const uint8_t[:] ivv
        cdef const uint8_t *ivp = NULL
        cdef size_t n = view.shape[0]
        cdef size_t head = fp_esp_head(&self.sa)
        cdef uint64_t last = UINT64_MAX if self.sa.esn else 0xFFFFFFFFu
        if iv is not None and self.sa.seq < last and n <= 65535:
            ivv = iv
            if ivv.shape[0] != self.sa.iv_len:
                raise ValueError(f"the IV is {self.sa.iv_len} bytes")
            ivp = &ivv[0]
        buf = bytearray(head + n + fp_esp_tail(&self.sa))
        cdef uint8_t[:] out = buf
        if n:
            memcpy(&out[head], &view[0], n)
        cdef long r = fp_esp_seal(&self.sa, &out[head], n, <uint8_t>(next_header & 0xFF), ivp)
        if r < 0:
            return None
        return bytes(buf[:r])

    def open(self, packet):
        """(payload, Next Header), or the reason it is dropped (already counted)."""
        cdef bytearray buf = bytearray(packet)
        cdef uint8_t empty = 0
        cdef uint8_t *p = &empty
        cdef uint8_t *pl = NULL
        cdef size_t plen = 0
        cdef uint8_t nh = 0
        cdef int reason = 0
        if len(buf):
            p = <uint8_t *>(<char *>buf)
        if fp_esp_open(&self.sa, p, len(buf), &pl, &plen, &nh, &reason) < 0:
            return ESP_DROP_REASONS[reason]
        cdef size_t off = pl - p
        return bytes(buf[off:off + plen]), nh


cdef str _esp_len_error(object m, str alg, int got):
    want = " or ".join(str(n * 8) for n in m.key_lengths(alg))
    return f"{alg} needs a {want}-bit key, not {got * 8} bits"


cdef class EspTunnel:
    """One tunnel's ESP packet work in C (fp_esp_path): what io/espport.py EspPath does
    between the tunnel's datagrams and the ESP socket, without the socket. ``sa_out``
    and ``inbound`` hold the EspSA objects (the C struct points into them)."""

    cdef fp_esp_path p
    cdef readonly object config
    cdef readonly EspSA sa_out
    cdef readonly dict inbound
    cdef uint32_t *_foreign  # p.foreign: the sorted SPIs of set_foreign
    cdef readonly frozenset foreign
    cdef readonly bint count_unknown

    def __init__(self, config):
        PyMem_Free(self._foreign)
        self._foreign = NULL
        memset(&self.p, 0, sizeof(self.p))
        self.config = config
        self.inbound = {}
        self.foreign = frozenset()
        self.count_unknown = True
        v6 = config.family == 6
        self.p.udp = config.encap is Encap.UDP
        self.p.family = 6 if v6 else 4
        local, remote = config.local.packed, config.remote.packed
        memcpy(self.p.local, <const char *>local, len(local))
        memcpy(self.p.remote, <const char *>remote, len(remote))
        if self.p.udp:
            self.p.sport = config.udp_sport
            self.p.dport = config.udp_dport
        self.p.csum = bool(config.udp6_csum_tx if v6 else config.udp_csum)

    def set_out(self, EspSA sa):
        """The outbound SA, or None."""
        self.sa_out = sa
        self.p.out = NULL if sa is None else &sa.sa

    def add_in(self, EspSA sa not None):
        if sa.spi in self.inbound:
            raise ValueError(f"inbound SA spi 0x{sa.spi:08x} is there already")
        if self.p.nin >= FP_ESP_MAX_IN:
            raise ValueError(f"at most {FP_ESP_MAX_IN} inbound SAs per tunnel")
        self.inbound[sa.spi] = sa
        self.p.in_[self.p.nin] = &sa.sa
        self.p.nin += 1

    def remove_in(self, uint32_t spi):
        cdef EspSA sa = self.inbound.pop(spi)
        cdef int i, j = 0
        for i in range(self.p.nin):
            if self.p.in_[i] != &sa.sa:
                self.p.in_[j] = self.p.in_[i]
                j += 1
        self.p.nin = j
        return sa

    def __dealloc__(self):
        PyMem_Free(self._foreign)

    def set_foreign(self, foreign, bint count_unknown=True):
        """proto/espdemux.py's part for this tunnel (EspInbound.foreign and
        count_unknown): the other tunnels' inbound SPIs, ignored here without a count,
        and whether this tunnel counts an SPI none of them knows."""
        cdef list spis = sorted(set(foreign))
        cdef Py_ssize_t i, n = len(spis)
        cdef uint32_t *buf = NULL
        for spi in spis:
            if not 0 <= spi <= 0xFFFFFFFF:
                raise ValueError("SPI must be 0..0xffffffff")
        if n:
            buf = <uint32_t *>PyMem_Malloc(n * sizeof(uint32_t))
            if buf == NULL:
                raise MemoryError()
            for i in range(n):
                buf[i] = spis[i]
        old = self._foreign
        self._foreign = buf
        self.p.foreign = buf
        self.p.nforeign = <int>n
        self.p.quiet_unknown = not count_unknown
        PyMem_Free(old)
        self.foreign = frozenset(spis)
        self.count_unknown = count_unknown

    @property
    def drops(self):
        """Drops that belong to no SA (EspInbound.drops): unknown SPI, too short."""
        return {name: self.p.drops[i] for i, name in enumerate(ESP_DROP_REASONS)}

    def seal(self, datagram):
        """The ESP packet (what goes after the IP header) for one L2TPv3 datagram, or
        None when it cannot go (no outbound SA, sequence numbers or IVs used up)."""
        cdef const uint8_t[:] view = datagram
        cdef size_t n = view.shape[0]
        cdef size_t head = fp_esp_path_head(&self.p)
        cdef uint8_t *pkt = NULL
        if self.sa_out is None:
            return None
        buf = bytearray(head + n + fp_esp_tail(&self.sa_out.sa))
        cdef uint8_t[:] out = buf
        if n:
            memcpy(&out[head], &view[0], n)
        cdef long r = fp_esp_path_seal(&self.p, &out[head], n, &pkt)
        if r < 0:
            return None
        cdef size_t off = pkt - &out[0]
        return bytes(buf[off:off + r])

    def open(self, packet):
        """The L2TPv3 datagram, a drop reason (counted), or None for another flow's
        (authenticated, encap udp ports not this tunnel's) or another tunnel's (a
        foreign SPI, or an unknown one that tunnel counts): not counted."""
        cdef bytearray buf = bytearray(packet)
        cdef uint8_t empty = 0
        cdef uint8_t *p = &empty
        cdef uint8_t *d = NULL
        cdef size_t dlen = 0
        cdef int reason = 0
        if len(buf):
            p = <uint8_t *>(<char *>buf)
        rc = fp_esp_path_open(&self.p, p, len(buf), &d, &dlen, &reason)
        if rc < 0:
            return ESP_DROP_REASONS[reason]
        if rc > 0:
            return None
        cdef size_t off = d - p
        return bytes(buf[off:off + dlen])


cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *ts)
    int CLOCK_THREAD_CPUTIME_ID

cdef extern from "<stdlib.h>" nogil:
    void *malloc(size_t n)
    void free(void *p)


cdef double _cpu() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


def bench_esp(EspSA tx not None, EspSA rx not None, size_t size, long count):
    """For bench/esp_micro.py: seal ``count`` payloads of ``size`` bytes with ``tx``
    in place, then open one sealed packet ``count`` times with ``rx`` (restored each
    time), in C without the GIL. Returns (seal, open) CPU seconds of this thread.
    ``rx`` needs replay_window 0 (the same packet is opened again)."""
    cdef size_t head = fp_esp_head(&tx.sa)
    cdef size_t cap = head + size + fp_esp_tail(&tx.sa)
    cdef uint8_t *buf = <uint8_t *>malloc(cap)
    cdef uint8_t *copy = <uint8_t *>malloc(cap)
    cdef uint8_t *pl
    cdef size_t plen
    cdef uint8_t nh
    cdef int reason
    cdef long i, n = 0, ok = 0
    cdef double t0, t1, t2
    if buf == NULL or copy == NULL:
        free(buf)
        free(copy)
        raise MemoryError()
    if rx.sa.window:
        raise ValueError("rx needs replay_window 0")
    memset(buf, 0x5A, cap)
    with nogil:
        t0 = _cpu()
        for i in range(count):
            n = fp_esp_seal(&tx.sa, buf + head, size, 17, NULL)
        t1 = _cpu()
        memcpy(copy, buf, cap)
        for i in range(count):
            memcpy(buf, copy, <size_t>n)
            if fp_esp_open(&rx.sa, buf, <size_t>n, &pl, &plen, &nh, &reason) == 0:
                ok += 1
        t2 = _cpu()
    free(buf)
    free(copy)
    if n < 0 or ok != count:
        raise RuntimeError("ESP benchmark: seal or open failed")
    return t1 - t0, t2 - t1
