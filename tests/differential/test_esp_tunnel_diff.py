"""One tunnel's ESP packet work: the fast path's ``native.EspTunnel`` (fp_esp_path in
fp_esp.c, what the engine threads will run) against io/espport.py ``EspPath`` (the
pure-Python data path), packet by packet, for random tunnels (encap udp and ip, IPv4
and IPv6, UDP checksums on and off, random ports) and random traffic: the ESP packets
sent are equal byte for byte (AEAD; CBC IVs are random, so there each opens the
other's), and for every received packet (good, bit-flipped, truncated, unknown SPI,
wrong Next Header, another flow's UDP ports, nonsense) both deliver the same L2TPv3
datagram or nothing, with the same SA counters and drops, and the same tunnel drops.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import Iterator
from ipaddress import ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2tpv3.config import Encap, TunnelConfig
from l2tpv3.io.espport import EspPath, udp_checksum
from l2tpv3.io.ivstate import IvStore
from l2tpv3.proto.esp import AEAD_CHACHA, AEAD_GCM, AUTH_SHA1, AUTH_SHA256, ENC_CBC, EspSA

try:
    from l2tpv3.fast import native
except ImportError:  # pragma: no cover - the extension is required under CI
    native = None  # type: ignore[assignment]

REQUIRED = os.environ.get("CI") == "true" or os.environ.get("L2TPV3_REQUIRE_EXTENSIONS") == "1"

# (alg, key length, auth, auth key length)
ALGS = [
    (AEAD_GCM, 20, None, 0),
    (AEAD_GCM, 36, None, 0),
    (AEAD_CHACHA, 36, None, 0),
    (ENC_CBC, 16, AUTH_SHA256, 32),
    (ENC_CBC, 32, AUTH_SHA1, 20),
]


class _Capture:
    """Stands in for EspPath's ESP socket: keeps what would be sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> int:
        self.sent.append(bytes(data))
        return len(data)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def _need_c() -> None:
    if native is None or not native.HAVE_ESP:
        if REQUIRED:
            pytest.fail("the fast path's ESP (libcrypto) is not built")
        pytest.skip("the fast path is not built with libcrypto")


def _config(udp: bool, v6: bool, csum: bool, sport: int, dport: int) -> TunnelConfig:
    local, remote = ("fd00::1", "fd00::2") if v6 else ("10.1.2.3", "10.4.5.6")
    return TunnelConfig(
        tunnel_id=1,
        peer_tunnel_id=2,
        local=ip_address(local),
        remote=ip_address(remote),
        encap=Encap.UDP if udp else Encap.IP,
        udp_sport=sport if udp else None,
        udp_dport=dport if udp else None,
        udp_csum=csum,
        udp6_csum_tx=csum,
    )


_EVENT = st.one_of(
    st.tuples(st.just("send"), st.binary(min_size=1, max_size=100)),
    st.tuples(
        st.just("recv"),
        st.integers(0, 1000),
        st.sampled_from(["as is", "flip", "truncate", "spi", "ports", "next header"]),
        st.integers(0, 10_000),
    ),
    st.tuples(st.just("nonsense"), st.binary(max_size=60)),
)


@pytest.mark.parametrize("alg", ALGS, ids=lambda a: f"{a[0]}-{a[2]}-{a[1]}")
@settings(max_examples=60, deadline=None)
@given(
    udp=st.booleans(),
    v6=st.booleans(),
    csum=st.booleans(),
    sport=st.integers(1, 65535),
    dport=st.integers(1, 65535),
    esn=st.booleans(),
    window=st.sampled_from([0, 32]),
    events=st.lists(_EVENT, max_size=30),
)
def test_c_tunnel_matches_espport(
    loop: asyncio.AbstractEventLoop,
    tmp_path_factory: pytest.TempPathFactory,
    alg: tuple[str, int, str | None, int],
    udp: bool,
    v6: bool,
    csum: bool,
    sport: int,
    dport: int,
    esn: bool,
    window: int,
    events: list[tuple[object, ...]],
) -> None:
    _need_c()
    name, klen, auth, alen = alg
    key, akey = os.urandom(klen), (os.urandom(alen) if auth else None)
    cfg = _config(udp, v6, csum, sport, dport)

    def sa(cls: type[EspSA], spi: int, w: int = 0) -> EspSA:
        return cls(spi, name, key, akey, auth, esn=esn, replay_window=w)

    c_cls: type[EspSA] = native.EspSA  # type: ignore[assignment]
    delivered: list[bytes] = []
    py = EspPath(loop, cfg, delivered.append, IvStore(tmp_path_factory.mktemp("iv")))
    capture = _Capture()
    py.sock = capture  # type: ignore[assignment]
    py.out = sa(EspSA, 0x100)
    py.inbound.sas[0x200] = sa(EspSA, 0x200, window)
    c = native.EspTunnel(cfg)
    c.set_out(sa(c_cls, 0x100))  # type: ignore[arg-type]
    c.add_in(sa(c_cls, 0x200, window))  # type: ignore[arg-type]
    # The peer's outbound SA (spi 0x200), to make packets this tunnel receives.
    peer = sa(EspSA, 0x200)
    nh = 17 if udp else 115
    received: list[bytes] = []

    def from_peer(datagram: bytes, ports: tuple[int, int] = (dport, sport), n: int = nh) -> bytes:
        payload = datagram
        if udp:
            segment = struct.pack("!HHHH", ports[0], ports[1], 8 + len(datagram), 0) + datagram
            payload = segment
        packet = peer.seal(payload, n)
        assert packet is not None
        return packet

    for ev in events:
        if ev[0] == "send":
            datagram = ev[1]
            assert isinstance(datagram, bytes)
            py.sendto(datagram, (str(cfg.remote), 0))
            got = c.seal(datagram)
            assert got is not None
            if auth is None:
                assert got == capture.sent[-1]
            else:
                # Random CBC IVs: open each with the other implementation's inbound SA.
                for packet in (got, capture.sent[-1]):
                    rx = EspSA(0x100, name, key, akey, auth, esn=esn)
                    rx.seq = 0
                    opened = rx.open(packet)
                    assert isinstance(opened, tuple) and opened[1] == nh
                    body = opened[0]
                    if udp:
                        assert struct.unpack("!HHHH", body[:8])[:3] == (
                            sport,
                            dport,
                            8 + len(datagram),
                        )
                        assert body[8:] == datagram
                    else:
                        assert body == datagram
            received.append(from_peer(datagram or b"\x00"))
        else:
            if ev[0] == "nonsense":
                assert isinstance(ev[1], bytes)
                packet = ev[1]
            elif not received:
                continue
            else:
                index, how, where = ev[1], ev[2], ev[3]
                assert isinstance(index, int) and isinstance(where, int)
                packet = received[index % len(received)]
                if how == "flip":
                    b = bytearray(packet)
                    b[where % len(b)] ^= 1 << (where % 8)
                    packet = bytes(b)
                elif how == "truncate":
                    packet = packet[: where % len(packet)]
                elif how == "spi":
                    packet = struct.pack("!I", 0x300 + where) + packet[4:]
                elif how == "ports":
                    packet = from_peer(b"x" * (where % 40), (dport ^ 1, sport))
                elif how == "next header":
                    packet = from_peer(b"y", n=4)
            assert isinstance(packet, bytes)
            before = len(delivered)
            py.receive(packet)
            want = delivered[-1] if len(delivered) > before else None
            got_c = c.open(packet)
            assert (got_c if isinstance(got_c, bytes) else None) == want
        assert c.sa_out is not None and py.out is not None
        assert c.sa_out.counters == py.out.counters
        c_in, py_in = c.inbound[0x200], py.inbound.sas[0x200]
        assert c_in.counters == py_in.counters
        assert c_in.drops == py_in.drops
        assert c.drops == py.inbound.drops


@pytest.mark.parametrize("v6", [False, True])
def test_udp_checksum_matches_espport(v6: bool) -> None:
    """The UDP header fp_esp_path builds: checksum as espport.udp_checksum, and over
    IPv4 with udp_csum off a zero checksum, as the tunnel socket would send."""
    _need_c()
    for csum in (False, True):
        cfg = _config(True, v6, csum, 1701, 1702)
        c = native.EspTunnel(cfg)
        sa_c = native.EspSA(1, AEAD_GCM, bytes(20))
        c.set_out(sa_c)
        rx = EspSA(1, AEAD_GCM, bytes(20))
        for size in (0, 1, 2, 3, 100, 1473):
            datagram = os.urandom(size)
            packet = c.seal(datagram)
            assert packet is not None
            opened = rx.open(packet)
            assert isinstance(opened, tuple)
            segment = opened[0]
            got = struct.unpack("!H", segment[6:8])[0]
            fam = socket.AF_INET6 if v6 else socket.AF_INET
            src = socket.inet_pton(fam, str(cfg.local))
            dst = socket.inet_pton(fam, str(cfg.remote))
            zeroed = segment[:6] + b"\0\0" + segment[8:]
            assert got == (udp_checksum(src, dst, zeroed) if csum else 0)


def test_path_without_sas_drops_and_never_raises() -> None:
    _need_c()
    c = native.EspTunnel(_config(False, False, False, 0, 0))
    assert c.seal(b"frame") is None
    assert c.open(b"") == "too_short"
    assert c.open(b"\0\0\1\0" + bytes(40)) == "unknown_spi"
    assert c.drops["unknown_spi"] == 1 and c.drops["too_short"] == 1
    sa = native.EspSA(7, AEAD_GCM, bytes(20))
    c.add_in(sa)
    with pytest.raises(ValueError):
        c.add_in(native.EspSA(7, AEAD_GCM, bytes(20)))
    assert c.remove_in(7) is sa
    assert c.open(b"\0\0\0\7" + bytes(40)) == "unknown_spi"
