"""The pcapng writer of `l2tpv3 capture` (cli/pcapng.py) and the outer headers it puts
around a record (cli/capture.py wire_packet): read back by scapy and by tshark, with
the direction and comment of each packet and checksums that verify."""

from __future__ import annotations

import io
import subprocess
from ipaddress import ip_address
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgReader

from l2tpv3.cli.capture import CaptureUsageError, parse_args, parse_records, wire_packet
from l2tpv3.cli.pcapng import INBOUND, LINKTYPE_ETHERNET, LINKTYPE_RAW, OUTBOUND, PcapngWriter
from l2tpv3.config import Encap, TunnelConfig
from l2tpv3.constants import CAPTURE_IN, CAPTURE_OUT
from l2tpv3.io.capture import CaptureRing
from tests.support.tshark import require_tshark

FRAME = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.1.1.1",
              dst="10.1.1.2") / UDP(sport=1, dport=2) / b"hello")  # fmt: skip
# UDP: flags word, session ID 0x1234, 4-byte cookie, default sublayer (S=1, seq 5)
L2TP_UDP = b"\x00\x03\x00\x00" + (0x1234).to_bytes(4, "big") + b"\xaa" * 4 + b"\x40\x00\x00\x05"


def tunnel(encap: Encap, family: int, csum: bool = False) -> TunnelConfig:
    loc, rem = ("10.0.0.1", "10.0.0.2") if family == 4 else ("fd00::1", "fd00::2")
    ports = {"udp_sport": 5000, "udp_dport": 6000} if encap is Encap.UDP else {}
    return TunnelConfig(1, 2, ip_address(loc), ip_address(rem), encap, udp_csum=csum,
                        **ports)  # type: ignore[arg-type]  # fmt: skip


def _write(packets: list[tuple[int, bytes, int, str | None]], linktype: int) -> bytes:
    buf = io.BytesIO()
    w = PcapngWriter(buf, linktype, "tunnel 1")
    for ts, data, direction, comment in packets:
        w.write(ts, data, direction, comment)
    assert w.packets == len(packets)
    return buf.getvalue()


def test_scapy_reads_direction_comment_time() -> None:
    pkts = [
        (1_700_000_000_123_456_789, FRAME, OUTBOUND, None),
        (1_700_000_000_223_456_789, FRAME + b"x", INBOUND, "rx_cookie_discards"),
    ]
    blob = _write(pkts, LINKTYPE_ETHERNET)
    got = list(PcapNgReader(io.BytesIO(blob)))  # type: ignore[arg-type]  # a file works too
    assert [bytes(p) for p in got] == [FRAME, FRAME + b"x"]
    assert [p.direction for p in got] == [OUTBOUND, INBOUND]
    assert [p.comments for p in got] == [None, [b"rx_cookie_discards"]]
    # nanoseconds kept (if_tsresol 9)
    assert [int(p.time * 10**9) for p in got] == [ts for ts, *_ in pkts]


WIRE_CASES = [(Encap.UDP, 4, True), (Encap.UDP, 4, False), (Encap.UDP, 6, True),
              (Encap.IP, 4, False), (Encap.IP, 6, False)]  # fmt: skip


@pytest.mark.parametrize(("encap", "family", "csum"), WIRE_CASES)
def test_wire_packet_headers(encap: Encap, family: int, csum: bool) -> None:
    t = tunnel(encap, family, csum)
    payload = L2TP_UDP + FRAME if encap is Encap.UDP else L2TP_UDP[4:] + FRAME
    for outbound in (True, False):
        raw = wire_packet(t, outbound, payload, 7)
        pkt = (IP if family == 4 else IPv6)(raw)
        src, dst = (t.local, t.remote) if outbound else (t.remote, t.local)
        assert (pkt.src, pkt.dst) == (str(src), str(dst))
        if family == 4:
            # scapy recomputes the checksums of a rebuilt copy: ours must equal them
            assert pkt.chksum == IP(bytes(pkt.copy().__class__(raw))).chksum
            fresh = IP(raw)
            del fresh.chksum
            assert IP(bytes(fresh)).chksum == pkt.chksum
        if encap is Encap.UDP:
            udp = pkt[UDP]
            want = (5000, 6000) if outbound else (6000, 5000)
            assert (udp.sport, udp.dport) == want
            assert bytes(udp.payload) == payload
            if family == 6 or csum:
                fresh = udp.copy()
                del fresh.chksum
                again = (IP if family == 4 else IPv6)(bytes(pkt.copy()))
                del again[UDP].chksum
                assert (IP if family == 4 else IPv6)(bytes(again))[UDP].chksum == udp.chksum
            else:
                assert udp.chksum == 0
        else:
            assert (pkt.proto if family == 4 else pkt.nh) == 115
            assert bytes(pkt.payload) == payload


def test_tshark_reads_it(tmp_path: Path) -> None:
    exe = require_tshark()
    t = tunnel(Encap.UDP, 4, True)
    pkts = [
        (1_700_000_000_000_000_000, wire_packet(t, True, L2TP_UDP + FRAME, 1), OUTBOUND, None),
        (1_700_000_000_5000_00000, wire_packet(t, False, L2TP_UDP + FRAME, 2), INBOUND,
         "wrong_source"),
    ]  # fmt: skip
    path = tmp_path / "c.pcapng"
    path.write_bytes(_write(pkts, LINKTYPE_RAW))
    proc = subprocess.run(
        [exe, "-n", "-r", str(path), "-d", "udp.port==5000,l2tp", "-o",
         "l2tp.cookie_size:4 Byte Cookie", "-o", "l2tp.l2_specific:Default L2-Specific",
         "-d", "l2tp.pw_type==0,eth", "-o", "udp.check_checksum:TRUE",
         "-o", "ip.check_checksum:TRUE", "-T", "fields", "-E", "separator=/t",
         "-e", "frame.packet_flags_direction", "-e", "frame.comment", "-e", "l2tp.sid",
         "-e", "l2tp.l2_spec_sequence", "-e", "udp.checksum.status", "-e", "ip.checksum.status",
         "-e", "eth.src"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert [r[0] for r in rows] == ["0x00000002", "0x00000001"]
    assert [r[1] for r in rows] == ["", "wrong_source"]
    assert [int(r[2], 0) for r in rows] == [0x1234, 0x1234]
    assert [r[3] for r in rows] == ["5", "5"]
    # tshark's checksum status 1: good; outer (ours) and inner (the frame's) alike
    assert [r[4] for r in rows] == ["1,1", "1,1"]
    assert [r[5] for r in rows] == ["1,1", "1,1"]
    assert [r[6].split(",")[-1] for r in rows] == ["02:00:00:00:00:01"] * 2


def test_records_round_trip() -> None:
    ring = CaptureRing()
    ring.add(CAPTURE_OUT, 7, 0, b"abc")
    ring.add(CAPTURE_IN, 7, 3, memoryview(b"defg"))
    recs = list(parse_records(ring.take()))
    assert [(r.session_id, r.direction, r.drop, r.data, r.reason) for r in recs] == [
        (7, CAPTURE_OUT, 0, b"abc", None),
        (7, CAPTURE_IN, 3, b"defg", "control_message"),
    ]
    assert ring.records == 2 and ring.lost == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-w", "x"], "tunnel_id"),
        (["tunnel_id", "1"], "-w FILE"),
        (["tunnel_id", "1", "-w", "x", "-c", "0"], "at least 1"),
        (["tunnel_id", "1", "-w", "x", "-c", "many"], "at least 1"),
        (["tunnel_id", "1", "-w"], "needs a value"),
        (["tunnel_id", "1", "-w", "x", "--bogus"], "unknown option"),
    ],
)
def test_bad_arguments(argv: list[str], message: str) -> None:
    with pytest.raises(CaptureUsageError, match=message):
        parse_args(argv)


def test_arguments() -> None:
    a = parse_args(["tunnel_id", "3", "session_id", "4", "-w", "f", "-c", "10", "--inner"])
    assert (a.tunnel_id, a.session_id, a.path, a.count, a.inner) == (3, 4, "f", 10, True)
