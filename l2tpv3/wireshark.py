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

from .config import Encap, L2SpecType

__all__ = ["COOKIE_SIZE_PREF", "L2_SPECIFIC_PREF", "tshark_options"]

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
