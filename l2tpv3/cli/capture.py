"""``l2tpv3 capture tunnel_id ID [session_id ID] -w FILE [-c N] [--inner]``.

l2tpv3d records what the tunnel sends and receives (io/capture.py, or the engine's
fast/fp_capture.c) and streams the records over the control connection
(control/protocol.py CAPTURE_FRAME); this command writes them to FILE as pcapng
(cli/pcapng.py), so the file belongs to whoever runs it and the daemon, with its reduced
privileges, opens nothing.

- By default each record is the datagram as the underlay carried it: the L2TPv3 part
  the daemon sent or received, behind IPv4/IPv6 and UDP (or IP protocol 115) headers
  rebuilt from the tunnel's addresses and ports (LINKTYPE_RAW). A datagram from a
  stranger (``wrong_source``) is shown as if it came from the peer: the record does not
  keep its source. On an ESP tunnel the record is the L2TPv3 datagram before sealing /
  after opening, not the ESP packet.
- ``--inner``: the Ethernet frames inside, the session header taken off by the
  session's layout (proto/layout.py); datagrams of no session of ours (control
  messages, unknown session IDs, too short) are left out and counted.

Each packet carries its direction (``epb_flags``: inbound, outbound) and, when the
receiver dropped it, a comment with the drop reason the daemon counted it under
(proto/counters.py CAPTURE_DROP_REASONS). The capture ends after N packets, on Ctrl-C,
or when the tunnel (or the session) is deleted; then it prints how many packets it
wrote, how many the daemon lost because this reader was too slow (``capture_lost``),
and the tshark options that decode the file.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shlex
import socket
import struct
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from l2tpv3.cli import grammar
from l2tpv3.cli.pcapng import INBOUND, LINKTYPE_ETHERNET, LINKTYPE_RAW, OUTBOUND, PcapngWriter
from l2tpv3.cli.wireshark import tshark_options
from l2tpv3.config import Encap, L2SpecType, SessionConfig, TunnelConfig
from l2tpv3.constants import CAPTURE_HDR_LEN, CAPTURE_OUT
from l2tpv3.control import client
from l2tpv3.control.protocol import (
    CAPTURE_END,
    CAPTURE_FRAME,
    CAPTURE_OP,
    CAPTURE_RECORDS,
    ShowSessions,
    ShowTunnels,
)
from l2tpv3.errors import ControlError, L2TPError, RefusedError
from l2tpv3.io.capture import RECORD
from l2tpv3.proto.counters import CAPTURE_DROP_REASONS, CAPTURE_LOST
from l2tpv3.proto.layout import HeaderLayout

__all__ = ["CAPTURE_USAGE", "Record", "parse_records", "run_capture", "wire_packet"]

CAPTURE_USAGE = """\
Usage: l2tpv3 [ OPTIONS ] capture tunnel_id ID [ session_id ID ] -w FILE [ -c N ] [ --inner ]

Writes what l2tpv3d sends and receives on the tunnel to FILE (pcapng): the datagrams
with their outer IP and UDP headers, or with --inner the Ethernet frames inside; each
with its direction, and the drop reason when the receiver dropped it. Stops after N
packets, on Ctrl-C, or when the tunnel is deleted; then prints the tshark options that
decode the file. See docs/usage.md.
"""

EXIT_OK = 0
EXIT_UNREACHABLE = 1
EXIT_USAGE = 2


class CaptureUsageError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Args:
    tunnel_id: int
    session_id: int
    path: str
    count: int | None
    inner: bool


@dataclass(frozen=True, slots=True)
class Record:
    """One record of the daemon (io/capture.py RECORD)."""

    time_ns: int
    session_id: int
    direction: int
    drop: int
    data: bytes

    @property
    def reason(self) -> str | None:
        return (
            CAPTURE_DROP_REASONS[self.drop - 1]
            if 0 < self.drop <= len(CAPTURE_DROP_REASONS)
            else None
        )


def parse_records(blob: bytes) -> Iterator[Record]:
    off = 0
    while off + CAPTURE_HDR_LEN <= len(blob):
        ts, sid, n, direction, drop, _ = RECORD.unpack_from(blob, off)
        off += CAPTURE_HDR_LEN
        yield Record(ts, sid, direction, drop, blob[off : off + n])
        off += n


def parse_args(argv: list[str]) -> Args:
    tid: int | None = None
    sid = 0
    path: str | None = None
    count: int | None = None
    inner = False
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in ("-h", "--help", "help"):
            raise grammar.HelpRequested(explicit=True)
        if word == "--inner":
            inner = True
            i += 1
            continue
        if word not in ("tunnel_id", "tid", "session_id", "sid", "-w", "-c"):
            raise CaptureUsageError(f'unknown option "{word}"')
        if i + 1 >= len(argv):
            raise CaptureUsageError(f'option "{word}" needs a value')
        value = argv[i + 1]
        i += 2
        if word in ("tunnel_id", "tid"):
            tid = grammar.parse_u32("tunnel_id", value, "ID")
        elif word in ("session_id", "sid"):
            sid = grammar.parse_u32("session_id", value, "ID")
        elif word == "-w":
            if not value:
                raise CaptureUsageError('option "-w" needs a file name')
            path = value
        else:
            if not value.isdigit() or int(value) < 1:
                raise CaptureUsageError(f'"-c {value}": the packet count must be at least 1')
            count = int(value)
    if tid is None:
        raise CaptureUsageError('"tunnel_id" is required')
    if path is None:
        raise CaptureUsageError('"-w FILE" is required')
    return Args(tid, sid, path, count, inner)


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``, as a little-endian word to pack
    with "<H" (the sum is taken over native little-endian words)."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(array("H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def wire_packet(tunnel: TunnelConfig, outbound: bool, payload: bytes, ip_id: int = 0) -> bytes:
    """The IP packet that carried ``payload`` (the L2TP part) on the underlay, with the
    tunnel's addresses and ports (reversed for a received one)."""
    local, remote = tunnel.local, tunnel.remote
    src, dst = (local, remote) if outbound else (remote, local)
    if tunnel.encap is Encap.UDP:
        sport, dport = tunnel.udp_sport or 0, tunnel.udp_dport or 0
        if not outbound:
            sport, dport = dport, sport
        proto = 17
        length = 8 + len(payload)
        udp = struct.pack("!HHHH", sport, dport, length, 0) + payload
        csum = 0
        v6 = isinstance(src, ipaddress.IPv6Address)
        if v6 or tunnel.udp_csum:
            pseudo = src.packed + dst.packed
            pseudo += struct.pack("!IxxxB", length, 17) if v6 else struct.pack("!xBH", 17, length)
            csum = _checksum(pseudo + udp) or 0xFFFF
            udp = udp[:6] + struct.pack("<H", csum) + udp[8:]
        l4 = udp
    else:
        proto = 115
        l4 = payload
    if isinstance(src, ipaddress.IPv6Address):
        return struct.pack("!IHBB", 6 << 28, len(l4), proto, 64) + src.packed + dst.packed + l4
    hdr = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(l4), ip_id & 0xFFFF, 0x4000, 64, proto, 0)
    hdr += src.packed + dst.packed
    hdr = hdr[:10] + struct.pack("<H", _checksum(hdr)) + hdr[12:]
    return hdr + l4


def _recv_exact(f: BinaryIO, n: int) -> bytes | None:
    data = f.read(n)
    if data is None or len(data) < n:
        return None
    return data


def _decode_hint(args: Args, tunnel: TunnelConfig, sessions: list[SessionConfig]) -> str:
    quoted = shlex.quote(args.path)
    if args.inner:
        return f"tshark -r {quoted}\n"
    ports = (tunnel.udp_sport or 0, tunnel.udp_dport or 0) if tunnel.encap is Encap.UDP else ()
    out = []
    each: list[SessionConfig | None] = [*sessions] or [None]
    for s in each:
        if s is None:  # no session: the outer headers and the L2TP header's first words
            out.append(
                shlex.join(
                    [
                        "tshark",
                        "-r",
                        args.path,
                        *tshark_options(tunnel.encap, 0, L2SpecType.NONE, ports),
                    ]
                )
            )
            continue
        # Wireshark's cookie length is one setting: one line per direction if they differ.
        directions = [("", len(s.cookie))]
        if len(s.cookie) != len(s.peer_cookie):
            directions = [
                (f"l2tp.sid == {s.peer_session_id}", len(s.cookie)),
                (f"l2tp.sid == {s.session_id}", len(s.peer_cookie)),
            ]
        for display, cookie_len in directions:
            words = [
                "tshark",
                "-r",
                args.path,
                *tshark_options(tunnel.encap, cookie_len, s.l2spec_type, ports),
            ]
            if len(sessions) > 1 and not display:
                display = f"l2tp.sid == {s.session_id} || l2tp.sid == {s.peer_session_id}"
            out.append(shlex.join([*words, "-Y", display] if display else words))
    out.append(f"l2tpv3 explain -r {quoted} tunnel_id {tunnel.tunnel_id}")
    return "\n".join(out) + "\n"


def _error(text: str) -> None:
    print(f"Error: {' '.join(text.split())}", file=sys.stderr)


def run_capture(socket_path: str, argv: list[str]) -> int:
    try:
        args = parse_args(argv)
    except grammar.HelpRequested as exc:
        sys.stderr.write(CAPTURE_USAGE)
        return EXIT_OK if exc.explicit else EXIT_USAGE
    except (CaptureUsageError, L2TPError) as exc:  # L2TPError: a bad ID (ConfigError)
        _error(str(exc))
        return EXIT_USAGE
    try:
        tunnels = [t.config for t in client.call(socket_path, ShowTunnels(args.tunnel_id))]
        tunnels = [t for t in tunnels if t.tunnel_id == args.tunnel_id]
        if not tunnels:
            raise RefusedError(f"tunnel {args.tunnel_id} does not exist")
        sessions = [
            s.config
            for s in client.call(socket_path, ShowSessions(tunnel_id=args.tunnel_id))
            if s.config.tunnel_id == args.tunnel_id
        ]
    except RefusedError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except ControlError as exc:
        _error(str(exc))
        return EXIT_UNREACHABLE
    tunnel = tunnels[0]
    if args.session_id:
        sessions = [s for s in sessions if s.session_id == args.session_id]
        if not sessions:
            _error(f"session {args.session_id} does not exist in tunnel {args.tunnel_id}")
            return EXIT_USAGE
    try:
        out = open(args.path, "wb")  # noqa: SIM115 - closed in _capture
    except OSError as exc:
        _error(f"cannot write {args.path}: {exc.strerror or exc}")
        return EXIT_USAGE
    with out:
        return _capture(socket_path, args, tunnel, sessions, out)


def _capture(
    socket_path: str,
    args: Args,
    tunnel: TunnelConfig,
    sessions: list[SessionConfig],
    out: BinaryIO,
) -> int:
    layouts = {s.session_id: HeaderLayout.for_session(tunnel, s) for s in sessions}
    writer = PcapngWriter(
        out,
        LINKTYPE_ETHERNET if args.inner else LINKTYPE_RAW,
        f"tunnel {tunnel.tunnel_id}" + (" inner" if args.inner else ""),
    )
    writer.flush()
    request = {"op": CAPTURE_OP, "tunnel_id": args.tunnel_id, "session_id": args.session_id}
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(socket_path)
        sock.sendall(json.dumps(request).encode() + b"\n")
        stream = sock.makefile("rb")
        answer = json.loads(stream.readline() or b"{}")
    except (OSError, ValueError) as exc:
        _error(f"cannot reach l2tpv3d at {socket_path}: {exc}")
        return EXIT_UNREACHABLE
    if not isinstance(answer, dict) or answer.get("ok") is not True:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(args.path)
        why = answer.get("error") if isinstance(answer, dict) else None
        _error(str(why or "l2tpv3d refused the capture"))
        return EXIT_USAGE
    what = f"tunnel {args.tunnel_id}" + (f" session {args.session_id}" if args.session_id else "")
    print(
        f"capturing {what} to {args.path}"
        + (f" ({args.count} packets)" if args.count else "")
        + ", Ctrl-C to stop",
        file=sys.stderr,
        flush=True,
    )
    lost = skipped = 0
    why = "stopped"
    ip_id = 0
    try:
        while args.count is None or writer.packets < args.count:
            head = _recv_exact(stream, CAPTURE_FRAME.size)
            if head is None:
                why = "l2tpv3d closed the connection"
                break
            kind, lost, length = CAPTURE_FRAME.unpack(head)
            body = _recv_exact(stream, length) if length else b""
            if body is None:
                why = "l2tpv3d closed the connection"
                break
            if kind == CAPTURE_END:
                why = body.decode(errors="replace")
                break
            if kind != CAPTURE_RECORDS:
                continue
            for rec in parse_records(body):
                outbound = rec.direction == CAPTURE_OUT
                if args.inner:
                    lay = layouts.get(rec.session_id)
                    if lay is None:
                        skipped += 1
                        continue
                    hlen = lay.tx_header_len if outbound else lay.rx_header_len
                    if len(rec.data) < hlen:
                        skipped += 1
                        continue
                    packet = rec.data[hlen:]
                else:
                    ip_id += 1
                    packet = wire_packet(tunnel, outbound, rec.data, ip_id)
                writer.write(rec.time_ns, packet, OUTBOUND if outbound else INBOUND, rec.reason)
                if args.count is not None and writer.packets >= args.count:
                    why = f"{args.count} packets captured"
                    break
            writer.flush()
    except KeyboardInterrupt:
        why = "interrupted"
    except OSError as exc:
        why = f"connection lost: {exc.strerror or exc}"
    finally:
        sock.close()
        with contextlib.suppress(OSError):
            writer.flush()
    note = f", {skipped} datagrams of no session left out (--inner)" if skipped else ""
    print(
        f"{writer.packets} packets written to {args.path} ({why}); {CAPTURE_LOST} {lost}{note}",
        file=sys.stderr,
    )
    print("decode with:", file=sys.stderr)
    sys.stdout.write(_decode_hint(args, tunnel, sessions))
    sys.stdout.flush()
    return EXIT_OK
