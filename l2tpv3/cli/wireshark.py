"""The Wireshark/tshark options that decode a session's data messages.

Without a control channel in the capture Wireshark cannot know the cookie length, the
sublayer or the pseudowire type, and it only looks for L2TP on UDP port 1701. These
are its knobs (packet-l2tp.c, checked with ``tshark -G defaultprefs`` / ``-G decodes``
on Wireshark 4.0):

- ``-d udp.port==PORT,l2tp``: L2TP on our UDP port (IP protocol 115 is L2TP already);
- ``-o l2tp.cookie_size:...``: ``None``, ``4 Byte Cookie`` or ``8 Byte Cookie``. One
  value for the whole capture: when the two directions use cookies of different
  lengths, only one direction decodes;
- ``-o l2tp.l2_specific:...``: ``None`` or ``Default L2-Specific`` (RFC 4719);
- ``-d l2tp.pw_type==0,eth``: pseudowire type 0 is what Wireshark assigns a session
  whose type no control message announced; decode it as Ethernet (RFC 4719).

Fields then reported: ``l2tp.sid``, ``l2tp.cookie``, ``l2tp.l2_spec_s``,
``l2tp.l2_spec_sequence``, and the inner ``eth.*``/``ip.*`` (second occurrence).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from l2tpv3.config import Encap, L2SpecType, SessionConfig, TunnelConfig

__all__ = ["COOKIE_SIZE_PREF", "L2_SPECIFIC_PREF", "tshark_commands", "tshark_options"]

COOKIE_SIZE_PREF = {0: "None", 4: "4 Byte Cookie", 8: "8 Byte Cookie"}
L2_SPECIFIC_PREF = {L2SpecType.NONE: "None", L2SpecType.DEFAULT: "Default L2-Specific"}


def tshark_options(
    encap: Encap,
    cookie_len: int,
    l2spec: L2SpecType,
    udp_ports: tuple[int, ...] = (),
) -> list[str]:
    """tshark arguments decoding data messages whose cookie is ``cookie_len`` bytes."""
    if cookie_len not in COOKIE_SIZE_PREF:
        raise ValueError(f"cookie length must be 0, 4 or 8, not {cookie_len}")
    args: list[str] = []
    if encap is Encap.UDP:
        for port in sorted(set(udp_ports)):
            args += ["-d", f"udp.port=={port},l2tp"]
    args += ["-o", f"l2tp.cookie_size:{COOKIE_SIZE_PREF[cookie_len]}"]
    args += ["-o", f"l2tp.l2_specific:{L2_SPECIFIC_PREF[L2SpecType(l2spec)]}"]
    args += ["-d", "l2tp.pw_type==0,eth"]
    return args


def tshark_commands(tunnels: Sequence[TunnelConfig], sessions: Sequence[SessionConfig]) -> str:
    """``tshark`` command lines (with ``#`` comments) decoding each session's packets.

    One line per session, or one per direction when the two cookies differ in length
    (Wireshark's cookie size is one setting for the whole capture).
    """
    out: list[str] = []
    for t in tunnels:
        ports = (t.udp_sport or 0, t.udp_dport or 0) if t.encap is Encap.UDP else ()
        for s in (s for s in sessions if s.tunnel_id == t.tunnel_id):
            # Not "l2tp.sid in {A B}": tshark 4.0 refuses a set without commas, and
            # older releases one with them.
            both = f"l2tp.sid == {s.session_id} || l2tp.sid == {s.peer_session_id}"
            directions = [
                ("we send", f"l2tp.sid == {s.peer_session_id}", len(s.cookie)),
                ("we receive", f"l2tp.sid == {s.session_id}", len(s.peer_cookie)),
            ]
            if len(s.cookie) == len(s.peer_cookie):
                directions = [("both directions", both, len(s.cookie))]
            for what, display_filter, cookie_len in directions:
                out.append(f"# our tunnel {t.tunnel_id} session {s.session_id}: {what}")
                words = ["tshark", *tshark_options(t.encap, cookie_len, s.l2spec_type, ports)]
                out.append(shlex.join([*words, "-Y", display_filter]))
    return "\n".join(out) + "\n"
