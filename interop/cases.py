"""One pseudowire configuration, applied to both ends: our daemon and the kernel VM.

Shared by the interop tests and the capture generator. Our end is configured with the
l2tpv3 client; the kernel's end with the lines ``l2tpv3 peer-config --for linux`` prints
(:func:`interop.peerlines.peer_lines`), optionally edited to set up a mismatch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from interop.lab import GUEST4, GUEST6, HOST4, HOST6, INNER_HOST4, INNER_HOST6, KernelPeer
from interop.peerlines import DaemonClient, peer_lines

OUR_TID, KERNEL_TID, OUR_SID, KERNEL_SID = 2000, 1000, 20, 10
OUR_SPORT, OUR_DPORT = 5000, 6000
# (cookie we send, cookie we expect): different in each direction.
COOKIES = {
    0: ("", ""),
    4: ("0a0b0c0d", "11223344"),
    8: ("0102030405060708", "a1a2a3a4a5a6a7a8"),
}


class Daemon(DaemonClient, Protocol):
    def tunnels(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Case:
    encap: str  # udp | ip
    family: int  # 4 | 6
    cookie: int  # cookie length, 0, 4 or 8
    l2spec: str  # none | default
    seq: str  # none | send | recv | both (ours)

    @property
    def id(self) -> str:
        return f"{self.encap}{self.family}-c{self.cookie}-{self.l2spec}-seq{self.seq}"

    @property
    def cookies(self) -> tuple[str, str]:
        return COOKIES[self.cookie]


def ours_args(case: Case, extra: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """`l2tpv3` arguments for our tunnel and session."""
    local, remote = (HOST4, GUEST4) if case.family == 4 else (HOST6, GUEST6)
    tunnel = ["add", "tunnel", "tunnel_id", str(OUR_TID), "peer_tunnel_id", str(KERNEL_TID),
              "encap", case.encap, "local", local, "remote", remote]  # fmt: skip
    if case.encap == "udp":
        tunnel += ["udp_sport", str(OUR_SPORT), "udp_dport", str(OUR_DPORT)]
    session = ["add", "session", "tunnel_id", str(OUR_TID), "session_id", str(OUR_SID),
               "peer_session_id", str(KERNEL_SID)]  # fmt: skip
    cookie, peer_cookie = case.cookies
    if cookie:
        session += ["cookie", cookie, "peer_cookie", peer_cookie]
    session += ["l2spec_type", case.l2spec, "seq", case.seq, *extra]
    return tunnel, session


def reset(peer: KernelPeer, daemon: Daemon) -> None:
    peer.revive()
    for t in daemon.tunnels():
        daemon.cli("del", "tunnel", "tunnel_id", str(t["tunnel_id"]))
    peer.reset_l2tp()


def configure_ours(peer: KernelPeer, daemon: Daemon, case: Case, ipv6: bool = True,
                   extra: tuple[str, ...] = ()) -> None:  # fmt: skip
    """Our tunnel and session; ``extra`` words are appended to the session's."""
    tunnel, session = ours_args(case, extra)
    daemon.cli(*tunnel)
    daemon.cli(*session)
    ns = peer.ns
    if not ipv6:
        ns.run("sysctl", "-qw", "net.ipv6.conf.l2tpeth0.disable_ipv6=1")
    ns.ip("addr", "add", f"{INNER_HOST4}/24", "dev", "l2tpeth0")
    if ipv6:
        ns.ip("addr", "add", f"{INNER_HOST6}/64", "dev", "l2tpeth0", "nodad")
    ns.ip("link", "set", "l2tpeth0", "up")


def kernel_lines(daemon: Daemon, case: Case, edit: Mapping[str, str] | None = None) -> list[str]:
    lines = peer_lines(daemon, OUR_TID, OUR_SID)
    for old, new in (edit or {}).items():
        lines = [ln.replace(old, new) for ln in lines]
    return lines


def configure(peer: KernelPeer, daemon: Daemon, case: Case) -> list[str]:
    """Both ends of ``case`` from scratch; returns the lines the kernel was given."""
    reset(peer, daemon)
    configure_ours(peer, daemon, case)
    lines = kernel_lines(daemon, case)
    peer.configure(lines)
    return lines
