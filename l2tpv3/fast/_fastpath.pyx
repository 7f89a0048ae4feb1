# cython: language_level=3, boundscheck=False, wraparound=False
"""The Cython fast path: Session and Tunnel with the pure-Python classes' interface
(proto/session.py, proto/tunnel.py), backed by C structs (fp_session.c, fp_tunnel.c,
fp_ownership.c), plus a per-tunnel engine (fp_engine.c, fp_netio.c) that runs both
packet loops in C threads with the GIL released.

The sans-I/O methods (encapsulate, receive, poll, ...) run the same C code as the
engine, so tests can compare them with the reference classes packet by packet.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

import math
import socket

from l2tpv3.config import Encap, SeqPolicy
from l2tpv3.constants import MAX_BATCH
from l2tpv3.errors import StateError
from l2tpv3.fast import cgen as _cgen
from l2tpv3.proto.counters import (
    COUNTER_NAMES,
    DROP_REASONS,
    ESP_COUNTER_NAMES,
    ESP_DROP_REASONS,
    SESSION_DROP_REASONS,
    SHARED_COUNTERS,
    Counters,
)
from l2tpv3.proto.layout import HeaderLayout
from l2tpv3.proto.counters import SESSION_FEATURE_COUNTERS, TRUNK_DROP_REASONS
from l2tpv3.proto.mss import setting_code as _mss_setting_code

# Generated at build time from constants.py and proto/counters.py (cgen.py).
from l2tpv3.fast.fp_shared cimport (
    FP_NCOUNTERS,
    FP_NFEATURES,
    FP_NTRUNKDROPS,
    FP_NSDROPS,
    FP_NTDROPS,
    FP_RX_FRAME_SLACK,
    FP_RX_INVALID,
    FP_SEQ_MASK,
    FP_SHARED_FINGERPRINT,
    FP_CONTROL_MAX_LEN,
    FP_CONTROL_QUEUE_SLOTS,
    FP_CAPTURE_OUT,
)

cdef extern from "<sys/socket.h>":
    ctypedef unsigned int socklen_t
    cdef struct sockaddr_storage:
        unsigned short ss_family

cdef extern from "<netinet/in.h>":
    cdef struct in_addr:
        uint32_t s_addr
    cdef struct in6_addr:
        pass
    cdef struct sockaddr_in:
        unsigned short sin_family
        unsigned short sin_port
        in_addr sin_addr
    cdef struct sockaddr_in6:
        unsigned short sin6_family
        unsigned short sin6_port
        in6_addr sin6_addr
    unsigned short htons(unsigned short)
    int AF_INET
    int AF_INET6

cdef extern from "fp_ownership.h" nogil:
    struct fp_ownership:
        pass
    int fp_own_init(fp_ownership *o)
    void fp_own_clear(fp_ownership *o)
    int fp_own_add_tunnel(fp_ownership *o, uint32_t tunnel_id, int family,
                          const uint8_t *local, const uint8_t *peer)
    void fp_own_remove_tunnel(fp_ownership *o, uint32_t tunnel_id)
    int fp_own_claim(fp_ownership *o, uint32_t tunnel_id, uint32_t session_id,
                     uint32_t *other)
    void fp_own_release(fp_ownership *o, uint32_t session_id)
    int fp_own_owner(fp_ownership *o, uint32_t session_id, uint32_t *tunnel_id)
    uint32_t fp_own_counter(fp_ownership *o, uint32_t tunnel_id, uint32_t session_id,
                            int family, const uint8_t *host)

cdef extern from "fp_session.h" nogil:
    enum:
        FP_POLICY_KERNEL
        FP_POLICY_RFC3931
    ctypedef void (*fp_deliver_fn)(void *ctx, fp_session *s, const uint8_t *frame, size_t len)
    struct fp_out:
        fp_deliver_fn fn
        void *ctx
    struct fp_session:
        uint32_t session_id
        int tx_hlen
        int cookie_off
        int l2spec_off
        int rx_hlen
        int send_seq
        int recv_seq
        int lns_mode
        uint32_t ns
        int max_frame
        int ifindex
        uint32_t nr
        size_t qlen
        uint64_t c[FP_NCOUNTERS]
        uint64_t drops[FP_NSDROPS]
        int mss_setting
        unsigned mss4
        unsigned mss6
        uint64_t features[FP_NFEATURES]
        double last_rx
        double last_arp
        uint8_t arp_mac[6]
        int arp_watch
        int vlan
        int vlan_pop
    struct fp_layout:
        const uint8_t *tx_prefix
        int tx_prefix_len
        int tx_l2spec
        int tx_hlen
        const uint8_t *rx_cookie
        int rx_cookie_len
        int rx_cookie_off
        int rx_l2spec_off
        int rx_hlen
    int fp_session_init(fp_session *s, uint32_t session_id, const fp_layout *lay, int send_seq,
                        int recv_seq, int policy, double reorder_timeout)
    void fp_session_clear(fp_session *s)
    void fp_session_header(fp_session *s, uint8_t *hdr, size_t flen)
    void fp_session_tx_failed(fp_session *s, size_t pktlen)
    void fp_session_receive(fp_session *s, const uint8_t *p, size_t len, double now,
                            fp_out *out)
    void fp_session_poll(fp_session *s, double now, fp_out *out)
    int fp_session_next_deadline(const fp_session *s, double *deadline)
    void fp_session_set_mss(fp_session *s, int setting)
    void fp_session_set_mtu(fp_session *s, int mtu)
    int fp_session_clamp(fp_session *s, uint8_t *frame, size_t len, int partial,
                         size_t csum_start, size_t csum_offset)
    void fp_session_set_vlan(fp_session *s, int vid, int pop)
    int fp_session_untag(const fp_session *s, uint8_t *frame, size_t len)

cdef extern from "fp_tunnel.h" nogil:
    struct fp_capture
    struct fp_tunnel:
        uint64_t c[FP_NCOUNTERS]
        uint64_t retired[FP_NCOUNTERS]
        uint64_t drops[FP_NTDROPS]
        fp_capture *cap
    int fp_tunnel_init(fp_tunnel *t, int udp, uint32_t tunnel_id, fp_ownership *own)
    void fp_tunnel_clear(fp_tunnel *t)
    int fp_tunnel_add(fp_tunnel *t, fp_session *s)
    void fp_tunnel_remove(fp_tunnel *t, fp_session *s)
    void fp_tunnel_drop(fp_tunnel *t, int reason)
    void fp_tunnel_receive(fp_tunnel *t, const uint8_t *p, size_t len, double now,
                           fp_out *out, fp_session **hit)
    void fp_tunnel_receive_foreign(fp_tunnel *t, const uint8_t *p, size_t len, int family,
                                   const uint8_t *host)
    int fp_tunnel_take_control(fp_tunnel *t, uint8_t (*out)[FP_CONTROL_MAX_LEN],
                               unsigned short *lens, int max)
    void fp_tunnel_session_header(fp_tunnel *t, fp_session *s, uint8_t *hdr, size_t flen)

cdef extern from "fp_capture.h" nogil:
    int fp_capture_start(fp_tunnel *t, uint32_t session_id)
    void fp_capture_stop(fp_tunnel *t)
    size_t fp_capture_take(fp_tunnel *t, const uint8_t **out, uint64_t *lost)
    void fp_capture_push(fp_tunnel *t, int dir, uint32_t sid, const uint8_t *p, size_t len)
    void fp_capture_receive(fp_tunnel *t, fp_capture *cap, const uint8_t *p, size_t len,
                            double now, fp_out *out, fp_session **hit)
    void fp_capture_receive_foreign(fp_tunnel *t, fp_capture *cap, const uint8_t *p,
                                    size_t len, int family, const uint8_t *host)

cdef extern from "fp_engine.h" nogil:
    struct fp_engine_opts:
        int sock
        int family
        int strip_ip
        sockaddr_storage peer
        socklen_t peer_len
        int batch
        int udp_gso
        int udp_gro
    struct fp_engine_stats:
        int udp_gso
        int udp_gro
        uint64_t superframes_in
        uint64_t segments_out
        uint64_t gso_sends
        uint64_t gro_datagrams_in
        uint64_t gro_superframes_out
    void fp_engine_get_stats(const fp_tunnel *t, fp_engine_stats *st)
    int fp_engine_start(fp_tunnel *t, const fp_engine_opts *o, char *err, size_t errlen)
    void fp_engine_stop(fp_tunnel *t)
    int fp_engine_attach(fp_tunnel *t, fp_session *s, int tap_fd, int vnet)
    void fp_engine_detach(fp_tunnel *t, fp_session *s)
    int fp_engine_notify_fd(const fp_tunnel *t)
    int fp_engine_follows_links(const fp_tunnel *t)
    int fp_engine_take_gone(fp_tunnel *t, uint32_t *out, int max)
    int fp_engine_attach_trunk(fp_tunnel *t, fp_trunk *tr, int fd)
    void fp_engine_detach_trunk(fp_tunnel *t, fp_trunk *tr)

cdef extern from "fp_vlan.h" nogil:
    struct fp_trunk:
        int fd
        int slot
        uint32_t sid[4096]
        uint64_t drops[FP_NTRUNKDROPS]
    int fp_vlan_outer_vid(const uint8_t *f, size_t len)
    uint32_t fp_trunk_classify(fp_trunk *t, const uint8_t *f, size_t len)

include "_esp.pxi"

cdef extern from "fp_tunnel.h" nogil:
    void fp_tunnel_lock(fp_tunnel *t)
    void fp_tunnel_unlock(fp_tunnel *t)

cdef extern from "fp_engine.h" nogil:
    void fp_engine_set_esp(fp_tunnel *t, fp_esp_path *path, int fd,
                           const sockaddr_storage *peer, socklen_t peer_len, int espinudp)
    long fp_engine_esp_seal(fp_tunnel *t, fp_esp_path *path, uint8_t *d, size_t len,
                            uint8_t **pkt)
    int fp_engine_iv_requested(const fp_tunnel *t)
    void fp_engine_esp_grant(fp_tunnel *t, fp_esp_sa *sa, uint64_t first, uint64_t last)


cdef socklen_t _sockaddr(object host, int port, bint v6, sockaddr_storage *out) except 0:
    cdef sockaddr_in *a4
    cdef sockaddr_in6 *a6
    memset(out, 0, sizeof(sockaddr_storage))
    if v6:
        a6 = <sockaddr_in6 *>out
        a6.sin6_family = AF_INET6
        a6.sin6_port = htons(port)
        packed = socket.inet_pton(socket.AF_INET6, host)
        memcpy(&a6.sin6_addr, PyBytes_AS_STRING(packed), 16)
        return sizeof(sockaddr_in6)
    a4 = <sockaddr_in *>out
    a4.sin_family = AF_INET
    a4.sin_port = htons(port)
    packed = socket.inet_pton(socket.AF_INET, host)
    memcpy(&a4.sin_addr, PyBytes_AS_STRING(packed), 4)
    return sizeof(sockaddr_in)

# The C core was compiled with the values of a header generated from the Python source:
# a build from other values must not run (ImportError, never an assert).
FINGERPRINT = FP_SHARED_FINGERPRINT.decode()
_cgen.check(FINGERPRINT)
# The counters kept on the tunnel and its sessions alike, by their index in the C arrays.
cdef tuple _SHARED_INDEXES = tuple(COUNTER_NAMES.index(name) for name in SHARED_COUNTERS)


cdef void _collect(void *ctx, fp_session *s, const uint8_t *frame, size_t n) noexcept nogil:
    # Only used by the sans-I/O methods, which hold the GIL already (re-taking it is cheap).
    with gil:
        (<list>ctx).append(PyBytes_FromStringAndSize(<const char *>frame, n))


cdef object _counters(const uint64_t *c):
    return Counters(**{name: c[i] for i, name in enumerate(COUNTER_NAMES)})


cdef class Session:
    """session.Session on a C struct; see that class for the semantics."""

    cdef fp_session s
    cdef readonly object config
    cdef readonly object layout

    def __cinit__(self):
        memset(&self.s, 0, sizeof(self.s))

    def __init__(self, tunnel, config):
        lay = HeaderLayout.for_session(tunnel, config)
        self.config = config
        self.layout = lay
        prefix = lay.tx_prefix
        cookie = lay.rx_cookie
        policy = FP_POLICY_RFC3931 if config.seq_policy is SeqPolicy.RFC3931 else FP_POLICY_KERNEL
        timeout = config.reorder_timeout / 1000.0
        if not 0.0 <= timeout < math.inf:
            raise ValueError(f"reorder_timeout must be a finite number >= 0, not {timeout!r}")
        # The layout is computed once, in proto/layout.py, for both implementations.
        cdef fp_layout cl
        cl.tx_prefix = <const uint8_t *>PyBytes_AS_STRING(prefix)
        cl.tx_prefix_len = len(prefix)
        cl.tx_l2spec = lay.tx_l2spec
        cl.tx_hlen = lay.tx_header_len
        cl.rx_cookie = <const uint8_t *>PyBytes_AS_STRING(cookie)
        cl.rx_cookie_len = len(cookie)
        cl.rx_cookie_off = lay.rx_cookie_offset
        cl.rx_l2spec_off = lay.rx_l2spec_offset
        cl.rx_hlen = lay.rx_header_len
        if fp_session_init(&self.s, config.session_id, &cl, config.seq.send, config.seq.recv,
                           policy, timeout) < 0:
            raise ValueError(f"header layout does not fit the fast path: {lay!r}")
        fp_session_set_mss(&self.s, _mss_setting_code(config.mss_clamp))
        if config.trunk is not None and config.vlan:
            fp_session_set_vlan(&self.s, config.vlan, config.vlan_pop)

    def __dealloc__(self):
        fp_session_clear(&self.s)

    @property
    def session_id(self):
        return self.s.session_id

    @property
    def counters(self):
        """A snapshot (the C counters move on their own while the engine runs)."""
        return _counters(<const uint64_t *>self.s.c)

    @property
    def drops(self):
        return {name: self.s.drops[i] for i, name in enumerate(SESSION_DROP_REASONS)}

    @property
    def send_seq(self):
        return bool(self.s.send_seq)

    @send_seq.setter
    def send_seq(self, value):
        self.s.send_seq = bool(value)

    @property
    def recv_seq(self):
        return bool(self.s.recv_seq)

    @recv_seq.setter
    def recv_seq(self, value):
        self.s.recv_seq = bool(value)

    @property
    def lns_mode(self):
        return bool(self.s.lns_mode)

    @lns_mode.setter
    def lns_mode(self, value):
        self.s.lns_mode = bool(value)

    @property
    def ns(self):
        return self.s.ns

    @ns.setter
    def ns(self, value):
        self.s.ns = value & FP_SEQ_MASK

    @property
    def max_frame(self):
        return self.s.max_frame

    @property
    def nr(self):
        return self.s.nr

    @property
    def held(self):
        return self.s.qlen

    def set_mtu(self, int mtu):
        fp_session_set_mtu(&self.s, mtu)

    def next_header(self, size_t frame_len):
        out = PyBytes_FromStringAndSize(NULL, self.s.tx_hlen)
        fp_session_header(&self.s, <uint8_t *>PyBytes_AS_STRING(out), frame_len)
        return out

    def encapsulate(self, frame):
        cdef const uint8_t[:] view = frame
        cdef size_t n = view.shape[0]
        cdef int h = self.s.tx_hlen
        out = PyBytes_FromStringAndSize(NULL, h + n)
        cdef uint8_t *p = <uint8_t *>PyBytes_AS_STRING(out)
        if n:
            memcpy(p + h, &view[0], n)
        fp_session_clamp(&self.s, p + h, n, 0, 0, 0)
        cdef int cut = fp_session_untag(&self.s, p + h, n)
        # The header goes where a popped tag was: the payload is `cut` bytes shorter.
        fp_session_header(&self.s, p + cut, n - <size_t>cut)
        return out[cut:] if cut else out

    @property
    def vlan(self):
        return self.s.vlan

    @property
    def vlan_pop(self):
        return bool(self.s.vlan_pop)

    def untag(self, frame):
        cdef uint8_t[:] view = frame
        cdef size_t n = view.shape[0]
        if n == 0:
            return 0
        return fp_session_untag(&self.s, &view[0], n)

    @property
    def features(self):
        return {name: self.s.features[i] for i, name in enumerate(SESSION_FEATURE_COUNTERS)}

    def clamp(self, frame, partial=None):
        cdef uint8_t[:] view = frame
        cdef size_t n = view.shape[0]
        if n == 0:
            return False
        if partial is None:
            return bool(fp_session_clamp(&self.s, &view[0], n, 0, 0, 0))
        start, offset = partial
        return bool(fp_session_clamp(&self.s, &view[0], n, 1, start, offset))

    def tx_failed(self, size_t length):
        fp_session_tx_failed(&self.s, length)

    def receive(self, payload, double now):
        cdef const uint8_t[:] view = payload
        cdef list frames = []
        cdef fp_out out
        out.fn = _collect
        out.ctx = <void *>frames
        cdef uint8_t empty = 0
        fp_session_receive(&self.s, &view[0] if view.shape[0] else &empty, view.shape[0], now,
                           &out)
        return frames

    def poll(self, double now):
        cdef list frames = []
        cdef fp_out out
        out.fn = _collect
        out.ctx = <void *>frames
        fp_session_poll(&self.s, now, &out)
        return frames

    def next_deadline(self):
        cdef double d
        if fp_session_next_deadline(&self.s, &d):
            return d
        return None

    @property
    def last_rx(self):
        return self.s.last_rx

    @property
    def last_arp(self):
        return self.s.last_arp

    def watch_arp(self, mac):
        cdef bytes m = bytes(mac)
        if m and len(m) != 6:
            raise ValueError("a MAC address is 6 bytes")
        self.s.arp_watch = 0
        if m:
            memcpy(self.s.arp_mac, PyBytes_AS_STRING(m), 6)
            self.s.arp_watch = 1


cdef bytes _packed(int family, str address):
    """16 bytes: the address (an IPv4 one in the first 4), as fp_ownership.h keeps it."""
    af = socket.AF_INET6 if family == 6 else socket.AF_INET
    return socket.inet_pton(af, address).ljust(16, b"\0")


cdef tuple _host(str host):
    """(family, 16 bytes) of a source address as recvfrom() spells it; family 0 for
    anything that is no address (it matches no tunnel's peer)."""
    cdef int fam = 6 if ":" in host else 4
    try:
        return fam, _packed(fam, host)
    except (OSError, ValueError):
        return 0, bytes(16)


cdef int _family(int family) except -1:
    # TunnelConfig.family (4 or 6); the socket module's AF_* are taken too.
    if family == 4 or family == socket.AF_INET:
        return 4
    if family == 6 or family == socket.AF_INET6:
        return 6
    raise ValueError(f"family must be 4 or 6, not {family}")


cdef class Trunk:
    """A trunk's VID-to-session map and drops (proto/vlan.py Trunk), which a Tunnel's
    engine reads once attach_trunk handed it the trunk TAP."""

    cdef fp_trunk t
    cdef readonly str name

    def __cinit__(self):
        memset(&self.t, 0, sizeof(self.t))
        self.t.fd = -1
        self.t.slot = -1

    def __init__(self, str name):
        self.name = name

    @property
    def vids(self):
        return {vid: self.t.sid[vid] for vid in range(4096) if self.t.sid[vid]}

    @property
    def drops(self):
        return {name: self.t.drops[i] for i, name in enumerate(TRUNK_DROP_REASONS)}

    def add(self, int vid, uint32_t session_id):
        if not 0 < vid < 4095:
            raise ValueError(f"VLAN {vid} is not 1..4094")
        if self.t.sid[vid]:
            raise ValueError(f"VLAN {vid} of {self.name} is taken by session {self.t.sid[vid]}")
        self.t.sid[vid] = session_id

    def remove(self, int vid):
        if 0 < vid < 4095:
            self.t.sid[vid] = 0

    def classify(self, frame):
        cdef const uint8_t[:] view = frame
        cdef size_t n = view.shape[0]
        cdef uint32_t sid = fp_trunk_classify(&self.t, &view[0] if n else NULL, n)
        return sid if sid else None


cdef class IpOwnership:
    """ownership.IpOwnership on a C struct (fp_ownership.c), which the engines' receive
    threads consult; see proto/api.py IpOwnershipAPI for the semantics."""

    cdef fp_ownership o
    cdef bint _init

    def __cinit__(self):
        if fp_own_init(&self.o) < 0:
            raise MemoryError()
        self._init = True

    def __dealloc__(self):
        if self._init:
            fp_own_clear(&self.o)

    def add_tunnel(self, uint32_t tunnel_id, int family, str local, str peer):
        cdef int fam = _family(family)
        cdef bytes lo = _packed(fam, local)
        cdef bytes pe = _packed(fam, peer)
        if fp_own_add_tunnel(&self.o, tunnel_id, fam, <const uint8_t *>PyBytes_AS_STRING(lo),
                             <const uint8_t *>PyBytes_AS_STRING(pe)) < 0:
            raise MemoryError()

    def remove_tunnel(self, uint32_t tunnel_id):
        fp_own_remove_tunnel(&self.o, tunnel_id)

    def claim(self, uint32_t tunnel_id, uint32_t session_id):
        cdef uint32_t other = 0
        rc = fp_own_claim(&self.o, tunnel_id, session_id, &other)
        if rc < 0:
            raise MemoryError()
        if rc:
            raise StateError(
                f"session {session_id} already exists in tunnel {other} "
                "(IP-encap session IDs are unique per host)"
            )

    def release(self, uint32_t session_id):
        fp_own_release(&self.o, session_id)

    def owner(self, uint32_t session_id):
        cdef uint32_t tid = 0
        if fp_own_owner(&self.o, session_id, &tid):
            return tid
        return None

    def counter(self, uint32_t tunnel_id, uint32_t session_id, host=None):
        cdef int fam = 0
        cdef bytes packed
        if host is None:
            return fp_own_counter(&self.o, tunnel_id, session_id, 0, NULL)
        fam, packed = _host(host)
        return fp_own_counter(&self.o, tunnel_id, session_id, fam,
                              <const uint8_t *>PyBytes_AS_STRING(packed))


# The C tunnel points into its sessions and its ownership: keep them (no gc tp_clear)
# until __dealloc__ has stopped the engine.
@cython.no_gc_clear
cdef class Tunnel:
    """tunnel.Tunnel on a C struct, and the engine that runs its packet loops.

    ``ownership`` must be this module's IpOwnership (its C struct is what the engine's
    receive thread consults); anything else is a TypeError.
    """

    cdef fp_tunnel t
    cdef bint _init
    cdef readonly object config
    cdef readonly dict sessions
    cdef readonly IpOwnership ownership
    cdef readonly bint running
    # The trunks whose C structs fp_tunnel.trunks[] points at: alive while attached.
    cdef dict _trunks

    def __cinit__(self):
        self._init = False
        self._trunks = {}

    def __init__(self, config, IpOwnership ownership=None):
        cdef fp_ownership *own = NULL if ownership is None else &ownership.o
        if fp_tunnel_init(&self.t, config.encap is Encap.UDP, config.tunnel_id, own) < 0:
            raise MemoryError()
        self._init = True
        self.config = config
        self.sessions = {}
        self.ownership = ownership

    def __dealloc__(self):
        if self._init:
            with nogil:
                fp_tunnel_clear(&self.t)

    def add(self, Session session not None):
        if fp_tunnel_add(&self.t, &session.s) < 0:
            raise MemoryError()
        self.sessions[session.session_id] = session

    def remove(self, session_id):
        cdef Session session = self.sessions.pop(session_id)
        with nogil:
            fp_engine_detach(&self.t, &session.s)
            fp_tunnel_remove(&self.t, &session.s)
        return session

    def receive(self, payload, double now):
        cdef const uint8_t[:] view = payload
        cdef list frames = []
        cdef fp_out out
        cdef fp_session *hit = NULL
        cdef uint8_t empty = 0
        out.fn = _collect
        out.ctx = <void *>frames
        if self.t.cap is not NULL:
            fp_capture_receive(&self.t, self.t.cap, &view[0] if view.shape[0] else &empty,
                               view.shape[0], now, &out, &hit)
        else:
            fp_tunnel_receive(&self.t, &view[0] if view.shape[0] else &empty, view.shape[0],
                              now, &out, &hit)
        if hit is NULL:
            return None, frames
        return self.sessions[hit.session_id], frames

    def receive_foreign(self, payload, str host):
        cdef const uint8_t[:] view = payload
        cdef uint8_t empty = 0
        cdef int fam
        cdef bytes packed
        fam, packed = _host(host)
        if self.t.cap is not NULL:
            fp_capture_receive_foreign(&self.t, self.t.cap,
                                       &view[0] if view.shape[0] else &empty, view.shape[0],
                                       fam, <const uint8_t *>PyBytes_AS_STRING(packed))
            return
        fp_tunnel_receive_foreign(&self.t, &view[0] if view.shape[0] else &empty,
                                  view.shape[0], fam,
                                  <const uint8_t *>PyBytes_AS_STRING(packed))

    # `l2tpv3 capture` (fast/fp_capture.c, the twin of io/capture.py CaptureRing)

    def capture_start(self, uint32_t session_id=0):
        """Begin recording this tunnel's datagrams (0: every session's)."""
        if fp_capture_start(&self.t, session_id) != 0:
            if self.t.cap is not NULL:
                raise StateError(f"a capture already runs on tunnel {self.config.tunnel_id}")
            raise MemoryError("cannot allocate the capture buffers")

    def capture_take(self):
        """(the records since the last call, how many were lost so far)."""
        cdef const uint8_t *p = NULL
        cdef uint64_t lost = 0
        cdef size_t n = fp_capture_take(&self.t, &p, &lost)
        if p is NULL or n == 0:
            return b"", lost
        return PyBytes_FromStringAndSize(<const char *>p, n), lost

    def capture_push(self, uint32_t session_id, payload):
        """Record a datagram the daemon sends itself (a control message)."""
        cdef const uint8_t[:] view = payload
        if self.t.cap is NULL or view.shape[0] == 0:
            return
        with nogil:
            fp_capture_push(&self.t, FP_CAPTURE_OUT, session_id, &view[0], view.shape[0])

    def capture_stop(self):
        with nogil:
            fp_capture_stop(&self.t)

    @property
    def capturing(self):
        return self.t.cap is not NULL

    def count_drop(self, str reason):
        fp_tunnel_drop(&self.t, DROP_REASONS.index(reason))

    def take_control(self):
        cdef uint8_t buf[FP_CONTROL_QUEUE_SLOTS][FP_CONTROL_MAX_LEN]
        cdef unsigned short lens[FP_CONTROL_QUEUE_SLOTS]
        cdef int n
        with nogil:
            n = fp_tunnel_take_control(&self.t, buf, lens, FP_CONTROL_QUEUE_SLOTS)
        return [PyBytes_FromStringAndSize(<const char *>buf[i], lens[i]) for i in range(n)]

    def inject(self, session_id, frame):
        """The payload carrying ``frame`` on the session (counted as sent), built under
        the send lock so that it cannot race the engine's send thread."""
        cdef Session s = self.sessions[session_id]
        cdef const uint8_t[:] view = frame
        cdef size_t n = view.shape[0]
        cdef int h = s.s.tx_hlen
        out = PyBytes_FromStringAndSize(NULL, h + n)
        cdef uint8_t *p = <uint8_t *>PyBytes_AS_STRING(out)
        if n:
            memcpy(p + h, &view[0], n)
        with nogil:
            fp_tunnel_session_header(&self.t, &s.s, p, n)
            if self.t.cap is not NULL:
                fp_capture_push(&self.t, FP_CAPTURE_OUT, s.s.session_id, p, h + n)
        return out

    @property
    def counters(self):
        return _counters(<const uint64_t *>self.t.c)

    @property
    def drops(self):
        return {name: self.t.drops[i] for i, name in enumerate(DROP_REASONS)}

    def totals(self):
        """Tunnel statistics as the kernel keeps them: see tunnel.Tunnel.totals."""
        cdef uint64_t c[FP_NCOUNTERS]
        cdef Session s
        cdef int i
        memset(c, 0, sizeof(c))
        c[FP_RX_INVALID] = self.t.c[FP_RX_INVALID]
        for i in _SHARED_INDEXES:
            c[i] = self.t.retired[i]
        for s in self.sessions.values():
            for i in _SHARED_INDEXES:
                c[i] += s.s.c[i]
        return _counters(c)

    # -- engine --------------------------------------------------------------------

    def start(self, sock, peer, int batch=64, bint offload=True):
        """Run the packet loops on ``sock`` (an unconnected socket) to ``peer``.

        ``offload``: UDP GSO on send where the tunnel has UDP checksums on (the kernel
        refuses GSO without them) and UDP GRO on receive, each with a fallback.
        """
        cdef fp_engine_opts o
        cdef char err[200]
        cdef sockaddr_in *a4
        cdef sockaddr_in6 *a6
        if self.running:
            return
        if batch < 1 or batch > MAX_BATCH:
            raise ValueError(f"batch must be 1..{MAX_BATCH}, not {batch}")
        memset(&o, 0, sizeof(o))
        o.sock = sock.fileno()
        o.batch = batch
        host, port = peer
        v6 = self.config.family == 6
        o.family = 6 if v6 else 4
        o.strip_ip = self.config.encap is Encap.IP and not v6
        udp = self.config.encap is Encap.UDP
        csum = self.config.udp6_csum_tx if v6 else self.config.udp_csum
        o.udp_gso = offload and udp and csum
        o.udp_gro = offload and udp
        if v6:
            a6 = <sockaddr_in6 *>&o.peer
            a6.sin6_family = AF_INET6
            a6.sin6_port = htons(port)
            packed = socket.inet_pton(socket.AF_INET6, host)
            memcpy(&a6.sin6_addr, PyBytes_AS_STRING(packed), 16)
            o.peer_len = sizeof(sockaddr_in6)
        else:
            a4 = <sockaddr_in *>&o.peer
            a4.sin_family = AF_INET
            a4.sin_port = htons(port)
            packed = socket.inet_pton(socket.AF_INET, host)
            memcpy(&a4.sin_addr, PyBytes_AS_STRING(packed), 4)
            o.peer_len = sizeof(sockaddr_in)
        with nogil:
            rc = fp_engine_start(&self.t, &o, err, sizeof(err))
        if rc < 0:
            raise OSError(err.decode())
        self.running = True

    def stop(self):
        with nogil:
            fp_engine_stop(&self.t)
        self.running = False

    def attach(self, session_id, int tap_fd, bint vnet=False, int ifindex=0):
        """Hand the session's TAP to the engine (it reads it and writes to it).

        ``vnet``: the TAP was opened with IFF_VNET_HDR and TCP/checksum offloads.
        ``ifindex``: the TAP's; the receive thread then follows its MTU (RTM_NEWLINK)
        before handling each batch, so a new MTU holds for the very next frame.
        """
        cdef Session s = self.sessions[session_id]
        s.s.ifindex = ifindex
        with nogil:
            rc = fp_engine_attach(&self.t, &s.s, tap_fd, vnet)
        if rc < 0:
            raise OSError("cannot watch the TAP device")

    def attach_trunk(self, Trunk trunk, int fd):
        """Hand a trunk TAP (opened without IFF_VNET_HDR) to the engine: it reads it and
        sends each frame through the session its VID maps to (``trunk.add``)."""
        with nogil:
            rc = fp_engine_attach_trunk(&self.t, &trunk.t, fd)
        if rc < 0:
            raise OSError("cannot watch the trunk device (too many trunks on one tunnel?)")
        self._trunks[id(trunk)] = trunk

    def detach_trunk(self, Trunk trunk):
        """Take the trunk TAP back; call before closing it."""
        with nogil:
            fp_engine_detach_trunk(&self.t, &trunk.t)
        self._trunks.pop(id(trunk), None)

    def detach(self, session_id):
        """Take the TAP back; call before closing it."""
        cdef Session s = self.sessions.get(session_id)
        if s is not None:
            with nogil:
                fp_engine_detach(&self.t, &s.s)

    @property
    def offload_stats(self):
        """What the engine uses (udp_gso, udp_gro may have fallen back) and has done."""
        cdef fp_engine_stats st
        fp_engine_get_stats(&self.t, &st)
        return {
            "udp_gso": bool(st.udp_gso),
            "udp_gro": bool(st.udp_gro),
            "superframes_in": st.superframes_in,
            "segments_out": st.segments_out,
            "gso_sends": st.gso_sends,
            "gro_datagrams_in": st.gro_datagrams_in,
            "gro_superframes_out": st.gro_superframes_out,
        }

    @property
    def notify_fd(self):
        """Readable when sessions lost their TAP device: see :meth:`take_gone`."""
        return fp_engine_notify_fd(&self.t)

    @property
    def follows_links(self):
        """The receive thread sets the MTU of attached TAPs (by ifindex) from RTM_NEWLINK
        itself; False when not started or without a netlink socket."""
        return bool(fp_engine_follows_links(&self.t))

    # -- ESP in the engine (issue 9) ------------------------------------------------
    # The threads read the EspTunnel's C struct (its SAs, counters, window) under the
    # tunnel's locks, so every change to it goes through these methods.

    def esp_start(self, EspTunnel et not None, sock, peer, bint espinudp=False):
        """Seal every datagram with ``et`` and send it on ``sock`` (raw IPPROTO_ESP, or
        the espinudp UDP socket) to ``peer`` (host, port: 0 for raw); open what arrives
        on it. Keep ``et`` and ``sock`` alive until :meth:`esp_stop`."""
        cdef sockaddr_storage ss
        cdef socklen_t sl
        if not self.running:
            raise OSError("the engine is not running")
        host, port = peer
        sl = _sockaddr(host, port, self.config.family == 6, &ss)
        cdef int fd = sock.fileno()
        with nogil:
            fp_engine_set_esp(&self.t, &et.p, fd, &ss, sl, espinudp)

    def esp_stop(self):
        """Back to plain L2TPv3; the ESP socket may be closed after this returns."""
        with nogil:
            fp_engine_set_esp(&self.t, NULL, -1, NULL, 0, 0)

    def esp_set_out(self, EspTunnel et not None, EspSA sa):
        with nogil:
            fp_tunnel_lock(&self.t)
        try:
            et.set_out(sa)
        finally:
            fp_tunnel_unlock(&self.t)

    def esp_add_in(self, EspTunnel et not None, EspSA sa not None):
        with nogil:
            fp_tunnel_lock(&self.t)
        try:
            et.add_in(sa)
        finally:
            fp_tunnel_unlock(&self.t)

    def esp_remove_in(self, EspTunnel et not None, uint32_t spi):
        with nogil:
            fp_tunnel_lock(&self.t)
        try:
            return et.remove_in(spi)
        finally:
            fp_tunnel_unlock(&self.t)

    def esp_set_foreign(self, EspTunnel et not None, foreign, bint count_unknown=True):
        """EspTunnel.set_foreign under the tunnel's locks (the receive thread reads it)."""
        with nogil:
            fp_tunnel_lock(&self.t)
        try:
            et.set_foreign(foreign, count_unknown)
        finally:
            fp_tunnel_unlock(&self.t)

    def esp_seal(self, EspTunnel et not None, datagram):
        """EspTunnel.seal under the send lock (the send thread uses the same SA)."""
        cdef const uint8_t[:] view = datagram
        cdef size_t n = view.shape[0]
        cdef size_t head = fp_esp_path_head(&et.p)
        cdef uint8_t *pkt = NULL
        if et.sa_out is None:
            return None
        buf = bytearray(head + n + fp_esp_tail(&et.sa_out.sa))
        cdef uint8_t[:] out = buf
        if n:
            memcpy(&out[head], &view[0], n)
        cdef long r
        with nogil:
            r = fp_engine_esp_seal(&self.t, &et.p, &out[head], n, &pkt)
        if r < 0:
            return None
        cdef size_t off = pkt - &out[0]
        return bytes(buf[off:off + r])

    @property
    def iv_requested(self):
        """The send thread's outbound SA is short of AEAD IVs: grant the next block."""
        return bool(fp_engine_iv_requested(&self.t))

    def esp_grant(self, EspSA sa not None, first, last):
        """EspSA.grant_ivs under the send lock; clears :attr:`iv_requested`."""
        if not 1 <= first <= last <= UINT64_MAX:
            raise ValueError("bad IV range")
        cdef uint64_t f = first, l = last
        with nogil:
            fp_engine_esp_grant(&self.t, &sa.sa, f, l)

    def take_gone(self):
        cdef uint32_t buf[256]
        n = fp_engine_take_gone(&self.t, buf, 256)
        return [buf[i] for i in range(n)]
