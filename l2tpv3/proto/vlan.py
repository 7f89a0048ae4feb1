"""Per-VLAN sessions on a shared trunk (docs/usage.md "Per-VLAN sessions"), sans I/O.

A trunk TAP carries tagged frames for several sessions; the outer tag's VID says
which. These are the rules both implementations follow (C twin: fast/fp_vlan.c):

- A tag is an outer TPID of 0x8100 (IEEE 802.1Q C-tag) or 0x88a8 (802.1ad S-tag),
  as the kernel's ``eth_type_vlan()``; 0x9100 and other pre-standard QinQ TPIDs are
  not tags (such a frame counts as untagged). Only the outer tag is looked at: an
  S-tagged frame is mapped by its S-VID and carries its inner C-tag untouched.
- Trunk to session: an untagged frame is a ``vlan_untagged`` drop, a VID no session
  sits on a ``vlan_unmapped`` drop (counted per trunk). Otherwise the frame leaves
  through that session as it came, or, with ``pop``, without its outer tag.
- Session to trunk: with ``pop`` an 802.1Q tag (PCP 0, DEI 0, the session's VID) is
  pushed; without it the frame must already carry the session's VID as its outer
  tag (what the kernel's ``l2tpeth0.5`` sends), anything else is a ``vlan_mismatch``
  drop of the session, so one VLAN's pseudowire cannot inject into another VLAN.
"""

from __future__ import annotations

from typing import Final

from l2tpv3.constants import ETH_HLEN, TPID_8021AD, TPID_8021Q, VLAN_HLEN, VLAN_VID_MASK
from l2tpv3.proto.api import Payload
from l2tpv3.proto.counters import TRUNK_DROP_REASONS, VLAN_UNMAPPED, VLAN_UNTAGGED

__all__ = ["TAG_TPIDS", "Trunk", "outer_vid", "pop", "push"]

TAG_TPIDS: Final = (TPID_8021Q, TPID_8021AD)
_Q: Final = TPID_8021Q.to_bytes(2, "big")
_AD: Final = TPID_8021AD.to_bytes(2, "big")


def outer_vid(frame: Payload | bytearray) -> int:
    """The VID of the frame's outer tag, or -1 if it carries none (or is too short)."""
    if len(frame) < ETH_HLEN + VLAN_HLEN:
        return -1
    tpid = frame[12:14]
    if tpid != _Q and tpid != _AD:
        return -1
    return int.from_bytes(frame[14:16], "big") & VLAN_VID_MASK


def push(frame: Payload, vid: int) -> bytes:
    """``frame`` with an 802.1Q tag of ``vid`` (PCP 0, DEI 0) after its MAC addresses."""
    return bytes(frame[:12]) + _Q + vid.to_bytes(2, "big") + bytes(frame[12:])


def pop(frame: Payload) -> bytes:
    """``frame`` without its outer tag (the caller checked it has one)."""
    return bytes(frame[:12]) + bytes(frame[12 + VLAN_HLEN :])


class Trunk:
    """One trunk's VID-to-session map and its drops."""

    __slots__ = ("drops", "name", "vids")

    def __init__(self, name: str) -> None:
        self.name = name
        self.vids: dict[int, int] = {}  # VID -> session ID
        self.drops = dict.fromkeys(TRUNK_DROP_REASONS, 0)

    def add(self, vid: int, session_id: int) -> None:
        if vid in self.vids:
            raise ValueError(f"VLAN {vid} of {self.name} is taken by session {self.vids[vid]}")
        self.vids[vid] = session_id

    def remove(self, vid: int) -> None:
        self.vids.pop(vid, None)

    def classify(self, frame: Payload) -> int | None:
        """The session ID a frame read from the trunk goes to; None: a counted drop."""
        vid = outer_vid(frame)
        if vid < 0:
            self.drops[VLAN_UNTAGGED] += 1
            return None
        sid = self.vids.get(vid)
        if sid is None:
            self.drops[VLAN_UNMAPPED] += 1
        return sid
