"""ESP in the running C engine (its send and receive threads) against the pure-Python
path (io/espport.py ``EspPath`` over proto/session.py), over loopback without root:
the ESP socket is espinudp (RFC 3948, a UDP socket), and the session's "TAP" is one
end of a SOCK_SEQPACKET socket pair (one frame per read and write, as a TAP).

- send: frames written to the TAP leave the engine sealed, byte for byte what the
  Python path seals for the same frame with the same IV range and sequence numbers;
- receive: the peer's packets (good, replayed, bit-flipped, truncated, unknown SPI,
  nonsense) give the same frames on the TAP and the same SA counters and drops;
  plaintext L2TPv3 from the peer is a counted drop (``plaintext``);
- IVs: the send thread asks for a new block before its grant runs out, and stops
  sealing (tx_errors), never reusing an IV, when no grant comes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from ipaddress import ip_address
from pathlib import Path

import pytest

from l2tpv3.config import Encap, SaConfig, SaDir, SecretKey, SessionConfig, TunnelConfig
from l2tpv3.constants import ESP_IV_LOW_WATER
from l2tpv3.io.espport import EspPath
from l2tpv3.io.ivstate import IvStore
from l2tpv3.proto.esp import AEAD_CHACHA, AEAD_GCM, AUTH_SHA256, ENC_CBC, EspSA, key_fingerprint
from l2tpv3.proto.session import Session as PySession
from l2tpv3.proto.tunnel import Tunnel as PyTunnel

try:
    from l2tpv3.fast import native
except ImportError:  # pragma: no cover - the extension is required under CI
    native = None  # type: ignore[assignment]

REQUIRED = os.environ.get("CI") == "true" or os.environ.get("L2TPV3_REQUIRE_EXTENSIONS") == "1"
LOOPBACK = {4: "127.0.0.1", 6: "::1"}


def _need_c() -> None:
    if native is None or not native.HAVE_ESP:
        if REQUIRED:
            pytest.fail("the fast path's ESP (libcrypto) is not built")
        pytest.skip("the fast path is not built with libcrypto")


def _wait(cond: Callable[[], bool], what: object) -> None:
    deadline = time.monotonic() + 10
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out: {what!r}")
        time.sleep(0.005)


def _udp(family: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6 if family == 6 else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((LOOPBACK[family], 0))
    return s


class _Capture:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> int:
        self.sent.append(bytes(data))
        return len(data)


class Rig:
    """A running engine with one session and ESP over espinudp, and its peer."""

    def __init__(
        self, alg: str, key: bytes, auth: str | None, akey: bytes | None, family: int = 4
    ) -> None:
        self.alg, self.key, self.auth, self.akey = alg, key, auth, akey
        LO = self.lo = LOOPBACK[family]
        # The tunnel's socket and the peer's L2TP one; the ESP sockets, ours and the peer's.
        self.tsock, self.plain_peer = _udp(family), _udp(family)
        self.esock, self.peer = _udp(family), _udp(family)
        self.peer.settimeout(5)
        self.cfg = TunnelConfig(
            tunnel_id=1, peer_tunnel_id=2, local=ip_address(LO), remote=ip_address(LO),
            encap=Encap.UDP, udp_sport=self.tsock.getsockname()[1],
            udp_dport=self.plain_peer.getsockname()[1],
        )  # fmt: skip
        self.scfg = SessionConfig(
            tunnel_id=1,
            session_id=7,
            peer_session_id=9,
            cookie=b"\x01\x02\x03\x04",
            peer_cookie=b"\x05\x06\x07\x08",
        )
        self.t = native.Tunnel(self.cfg)
        self.t.add(native.Session(self.cfg, self.scfg))
        self.tap, self.tap_engine = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.tap.settimeout(5)
        self.tap_engine.setblocking(False)  # as a TAP: the engine reads until EAGAIN
        self.t.start(self.tsock, (LO, self.plain_peer.getsockname()[1]), batch=8, offload=False)
        self.t.attach(7, self.tap_engine.fileno(), False, 0)
        self.et = native.EspTunnel(self.cfg)
        self.t.esp_start(self.et, self.esock, (LO, self.peer.getsockname()[1]), espinudp=True)

    def sa(self, spi: int, window: int = 0) -> EspSA:
        """The reference SA (proto/esp.py) with this rig's keys."""
        return EspSA(spi, self.alg, self.key, self.akey, self.auth, replay_window=window)

    def csa(self, spi: int, window: int = 0) -> native.EspSA:
        """The fast path's SA with this rig's keys."""
        return native.EspSA(spi, self.alg, self.key, self.akey, self.auth, replay_window=window)

    def close(self) -> None:
        self.t.esp_stop()
        self.t.detach(7)
        self.t.stop()
        for s in (self.tsock, self.plain_peer, self.esock, self.peer, self.tap, self.tap_engine):
            s.close()


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("alg", [AEAD_GCM, AEAD_CHACHA, ENC_CBC])
def test_engine_seals_and_opens_as_python(
    loop: asyncio.AbstractEventLoop, tmp_path: object, alg: str, family: int
) -> None:
    _need_c()
    auth = AUTH_SHA256 if alg == ENC_CBC else None
    key = os.urandom(20 if alg == AEAD_GCM else 36 if alg == AEAD_CHACHA else 16)
    akey = os.urandom(32) if auth else None
    # IPv6: the UDP header inside ESP carries a checksum (udp6_csum_tx, the default).
    rig = Rig(alg, key, auth, akey, family)
    try:
        c_out = rig.csa(0x100)
        c_in = rig.csa(0x200, 32)
        if c_out.aead:
            rig.t.esp_grant(c_out, 1, 1 << 20)
        rig.t.esp_set_out(rig.et, c_out)
        rig.t.esp_add_in(rig.et, c_in)

        # The Python path, fed the same: its session builds the datagrams.
        py_session = PySession(rig.cfg, rig.scfg)
        delivered: list[bytes] = []
        py = EspPath(loop, rig.cfg, delivered.append, IvStore(str(tmp_path)))
        capture = _Capture()
        py.sock = capture  # type: ignore[assignment]
        py.out = rig.sa(0x100)
        if py.out.aead:
            py.out.grant_ivs(1, 1 << 20)
        py.inbound.sas[0x200] = rig.sa(0x200, 32)

        # -- send: TAP -> engine -> ESP, against EspPath.sendto of the same datagram
        frames = [bytes([i]) * n for i, n in enumerate([60, 1, 1400, 333, 64])]
        for frame in frames:
            rig.tap.send(frame)
            got = rig.peer.recv(70000)
            py.sendto(py_session.encapsulate(frame), (rig.lo, 0))
            want = capture.sent[-1]
            if auth is None:
                assert got == want
            else:
                # CBC: random IVs; the peer's SA opens both to the same datagram.
                outs = []
                for packet in (got, want):
                    rx = rig.sa(0x100)
                    opened = rx.open(packet)
                    assert isinstance(opened, tuple) and opened[1] == 17
                    outs.append(opened[0])
                assert outs[0] == outs[1]
        assert c_out.counters == py.out.counters
        assert rig.t.sessions[7].counters.tx_packets == len(frames)

        # -- receive: the peer's packets, good and bad, to both
        peer_sa = rig.sa(0x200)
        peer_session = PySession(
            rig.cfg,
            SessionConfig(tunnel_id=1, session_id=9, peer_session_id=7,
                          cookie=b"\x05\x06\x07\x08", peer_cookie=b"\x01\x02\x03\x04"),
        )  # fmt: skip

        def seal(frame: bytes) -> bytes:
            datagram = peer_session.encapsulate(frame)
            udp = struct.pack("!HHHH", rig.cfg.udp_dport, rig.cfg.udp_sport, 8 + len(datagram), 0)
            packet = peer_sa.seal(udp + datagram, 17)
            assert packet is not None
            return packet

        good = [seal(bytes([0x40 + i]) * (50 + 100 * i)) for i in range(4)]
        flipped = bytearray(good[3])  # seq 4, not seen yet: reaches the ICV check
        flipped[20] ^= 4
        packets = [
            good[0], good[1], good[1],  # a replay
            bytes(flipped), good[2][:11],  # bad ICV, too short
            struct.pack("!I", 0x999) + good[3][4:],  # unknown SPI
            b"\x01\x02\x03",  # nonsense
            good[3],
        ]  # fmt: skip
        for packet in packets:
            rig.peer.sendto(packet, rig.esock.getsockname())
            py.receive(packet)
        # A NAT keepalive and IKE's marker are not ESP: ignored, not counted (RFC 3948).
        rig.peer.sendto(b"\xff", rig.esock.getsockname())
        rig.peer.sendto(b"\0\0\0\0" + good[0], rig.esock.getsockname())
        py_tunnel = PyTunnel(rig.cfg)
        py_tunnel.add(py_session)
        want_frames: list[bytes] = []
        for datagram in delivered:
            _, out = py_tunnel.receive(datagram, 0.0)
            want_frames += [bytes(f) for f in out]
        assert len(want_frames) == 3
        got_frames = [rig.tap.recv(70000) for _ in want_frames]
        assert got_frames == want_frames
        _wait(lambda: c_in.counters == py.inbound.sas[0x200].counters,
              (c_in.counters, py.inbound.sas[0x200].counters))  # fmt: skip
        _wait(lambda: c_in.drops == py.inbound.sas[0x200].drops, (c_in.drops,))
        _wait(lambda: rig.et.drops == py.inbound.drops, (rig.et.drops, py.inbound.drops))
        assert c_in.drops["replayed"] == 1 and c_in.drops["auth_failed"] == 1
        assert rig.et.drops["unknown_spi"] == 1

        # -- plaintext from the peer while an inbound SA is there: a counted drop
        rig.plain_peer.sendto(peer_session.encapsulate(b"x" * 60), rig.tsock.getsockname())
        _wait(lambda: rig.et.drops["plaintext"] == 1, rig.et.drops)
        assert rig.t.sessions[7].counters.rx_packets == 3
    finally:
        rig.close()


def test_engine_asks_for_ivs_and_never_reuses_one() -> None:
    _need_c()
    key = os.urandom(20)
    rig = Rig(AEAD_GCM, key, None, None)
    try:
        sa = rig.csa(0x100)
        n = ESP_IV_LOW_WATER
        rig.t.esp_grant(sa, 1, n)
        rig.t.esp_set_out(rig.et, sa)
        assert not rig.t.iv_requested
        rig.tap.send(b"a" * 60)
        rig.peer.recv(2000)
        # Fewer than the low-water mark left after the batch: asked, once, by notify fd.
        _wait(lambda: rig.t.iv_requested, "iv request")
        ivs = set()
        for _ in range(3):
            rig.tap.send(b"b" * 60)
            pkt = rig.peer.recv(2000)
            ivs.add(pkt[8:16])
        # The grant is used up (n IVs); the next frame is not sealed: tx_errors.
        rig.t.esp_grant(sa, n - 1, n)  # at most 2 more: IVs n-1 and n
        rig.tap.send(b"c" * 60)
        iv = rig.peer.recv(2000)[8:16]
        assert iv == struct.pack("!Q", n - 1)
        rig.tap.send(b"d" * 60)
        assert rig.peer.recv(2000)[8:16] == struct.pack("!Q", n)
        rig.tap.send(b"e" * 60)
        _wait(lambda: sa.counters.tx_errors == 1, sa.counters)
        assert rig.t.sessions[7].counters.tx_errors == 1
        rig.peer.settimeout(0.2)
        with pytest.raises(TimeoutError):
            rig.peer.recv(2000)
        # A new grant and it sends again, above everything used.
        rig.t.esp_grant(sa, n + 1, 2 * n)
        assert not rig.t.iv_requested
        rig.peer.settimeout(5)
        rig.tap.send(b"f" * 60)
        assert rig.peer.recv(2000)[8:16] == struct.pack("!Q", n + 1)
    finally:
        rig.close()


def test_daemon_grants_ivs_the_engine_asks_for(tmp_path: Path) -> None:
    """io/engine.py EngineEspPath with a real IvStore: add sa grants the first block
    (on disk first), the engine's request through the notify fd brings the next block,
    durable before it is used, and the sealed packets carry IVs from it."""
    _need_c()
    from l2tpv3.io.engine import EngineEspPath

    rig = Rig(AEAD_GCM, os.urandom(20), None, None)
    try:
        # The rig's own espinudp socket goes; EngineEspPath opens one on encap_sport.
        rig.t.esp_stop()
        sport = rig.esock.getsockname()[1]
        rig.esock.close()
        block = ESP_IV_LOW_WATER + 2
        store = IvStore(tmp_path, block=block)
        esp = EngineEspPath(rig.t, rig.cfg, store)
        cfg = SaConfig(tunnel_id=1, dir=SaDir.OUT, spi=0x100, key=SecretKey(rig.key),
                       aead=AEAD_GCM, encap_sport=sport,
                       encap_dport=rig.peer.getsockname()[1])  # fmt: skip
        esp.add(cfg)
        fp = key_fingerprint(AEAD_GCM, rig.key)
        assert store.high_water(fp) == block
        ivs = []
        for _ in range(3):
            rig.tap.send(b"z" * 60)
            ivs.append(int.from_bytes(rig.peer.recv(2000)[8:16], "big"))
        assert ivs == [1, 2, 3]
        # Fewer than ESP_IV_LOW_WATER left: the engine asked; the daemon's loop (here,
        # the test) reserves the next block on disk and hands it over.
        _wait(lambda: rig.t.iv_requested, "iv request")
        assert esp.refill()
        assert store.high_water(fp) == 2 * block
        assert not rig.t.iv_requested
        rig.tap.send(b"y" * 60)
        assert int.from_bytes(rig.peer.recv(2000)[8:16], "big") == block + 1
        esp.remove(SaDir.OUT, 0x100)
        assert esp.sock is None
    finally:
        rig.close()
