"""IP-encap ownership of session IDs and peers, kept in one place (see
:class:`l2tpv3.proto.api.IpOwnershipAPI` for why it exists)."""

from __future__ import annotations

from dataclasses import dataclass

from l2tpv3.errors import StateError


@dataclass(frozen=True, slots=True)
class _Listener:
    family: int
    local: str
    peer: str


class IpOwnership:
    __slots__ = ("_sessions", "_tunnels")

    def __init__(self) -> None:
        self._tunnels: dict[int, _Listener] = {}
        self._sessions: dict[int, int] = {}

    def add_tunnel(self, tunnel_id: int, family: int, local: str, peer: str) -> None:
        self._tunnels[tunnel_id] = _Listener(family, local, peer)

    def remove_tunnel(self, tunnel_id: int) -> None:
        self._tunnels.pop(tunnel_id, None)
        for sid in [s for s, t in self._sessions.items() if t == tunnel_id]:
            del self._sessions[sid]

    def claim(self, tunnel_id: int, session_id: int) -> None:
        other = self._sessions.get(session_id)
        if other is not None and other != tunnel_id:
            raise StateError(
                f"session {session_id} already exists in tunnel {other} "
                "(IP-encap session IDs are unique per host)"
            )
        self._sessions[session_id] = tunnel_id

    def release(self, session_id: int) -> None:
        self._sessions.pop(session_id, None)

    def owner(self, session_id: int) -> int | None:
        return self._sessions.get(session_id)

    def _shares_listener(self, tunnel_id: int, other: int) -> _Listener | None:
        me, them = self._tunnels.get(tunnel_id), self._tunnels.get(other)
        if me is None or them is None or other == tunnel_id:
            return None
        if (me.family, me.local) != (them.family, them.local):
            return None
        return them

    def is_other_copy(self, tunnel_id: int, session_id: int) -> bool:
        owner = self._sessions.get(session_id)
        return owner is not None and self._shares_listener(tunnel_id, owner) is not None

    def is_other_peer(self, tunnel_id: int, host: str) -> bool:
        return any(
            (t := self._shares_listener(tunnel_id, other)) is not None and t.peer == host
            for other in self._tunnels
        )
