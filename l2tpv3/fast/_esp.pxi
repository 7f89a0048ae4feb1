# ESP (issue 9): the SA of proto/esp.py on fp_esp.c (libcrypto). Included by
# _fastpath.pyx; kept in its own file so the ESP binding stays apart from the rest.

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
        uint64_t seq
        uint64_t iv_ctr
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

# Built with libcrypto: ESP runs in C. Without it (no openssl/evp.h at build time) the
# SA class cannot be made and encrypted tunnels run on the Python path.
HAVE_ESP = bool(fp_esp_available())

# `ip xfrm` algorithm names -> fp_esp.h. CBC is named by its authentication algorithm.
cdef dict _ESP_ALGS = {
    "rfc4106(gcm(aes))": FP_ESP_AES_GCM,
    "rfc7539esp(chacha20,poly1305)": FP_ESP_CHACHA20_POLY1305,
    "hmac(sha256)": FP_ESP_AES_CBC_SHA256,
    "hmac(sha1)": FP_ESP_AES_CBC_SHA1,
}


cdef class EspSA:
    """One ESP SA in C (fp_esp.c): see proto/esp.py for the semantics."""

    cdef fp_esp_sa sa
    cdef bint _init

    def __cinit__(self):
        self._init = False

    def __init__(self, uint32_t spi, str alg, key, auth_key=None, str auth=None, *,
                 bint esn=False, uint32_t replay_window=0):
        cdef char err[200]
        cdef const uint8_t[:] k = key
        cdef const uint8_t[:] a
        cdef const uint8_t *ap = NULL
        cdef size_t alen = 0
        code = _ESP_ALGS.get(auth if alg == "cbc(aes)" else alg)
        if code is None:
            raise ValueError(f"unknown ESP algorithm {alg!r}")
        if auth_key is not None and len(auth_key):
            a = auth_key
            ap = &a[0]
            alen = a.shape[0]
        if k.shape[0] == 0:
            raise ValueError("empty ESP key")
        if fp_esp_init(&self.sa, spi, code, &k[0], k.shape[0], ap, alen, esn, replay_window,
                       err, sizeof(err)) < 0:
            raise ValueError(err.decode())
        self._init = True

    def __dealloc__(self):
        if self._init:
            fp_esp_clear(&self.sa)

    @property
    def spi(self):
        return self.sa.spi

    @property
    def seq(self):
        """The last sequence number sealed (the next is seq + 1)."""
        return self.sa.seq

    @seq.setter
    def seq(self, uint64_t value):
        self.sa.seq = value

    @property
    def iv_counter(self):
        return self.sa.iv_ctr

    @iv_counter.setter
    def iv_counter(self, uint64_t value):
        self.sa.iv_ctr = value

    @property
    def top(self):
        """The highest sequence number received and authenticated."""
        return self.sa.top

    @property
    def counters(self):
        return {name: self.sa.c[i] for i, name in enumerate(ESP_COUNTER_NAMES)}

    @property
    def drops(self):
        return {name: self.sa.drops[i] for i, name in enumerate(ESP_DROP_REASONS)}

    def seal(self, payload, int next_header, iv=None):
        """The ESP packet (header, IV, ciphertext, ICV) for payload; None when the SA
        cannot send (its sequence numbers are used up: counted in tx_errors)."""
        cdef const uint8_t[:] view = payload
        cdef const uint8_t[:] ivv
        cdef const uint8_t *ivp = NULL
        cdef size_t n = view.shape[0]
        cdef size_t head = fp_esp_head(&self.sa)
        if iv is not None:
            ivv = iv
            if ivv.shape[0] != self.sa.iv_len:
                raise ValueError(f"the IV is {self.sa.iv_len} bytes")
            ivp = &ivv[0]
        buf = bytearray(head + n + fp_esp_tail(&self.sa))
        cdef uint8_t[:] out = buf
        if n:
            memcpy(&out[head], &view[0], n)
        cdef long r = fp_esp_seal(&self.sa, &out[head], n, <uint8_t>next_header, ivp)
        if r < 0:
            return None
        return bytes(buf[:r])

    def open(self, packet):
        """(payload, next header), or the drop reason (counted) as a str."""
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
