"""IP-encap ownership of session IDs and peers, kept in one place (see
:class:`l2tpv3.proto.api.IpOwnershipAPI` for the rule it decides)."""

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

    def counter(self, tunnel_id: int, session_id: int, host: str | None = None) -> int:
        me = self._tunnels.get(tunnel_id)
        if me is None:
            return tunnel_id  # alone on its listener, as far as anyone knows
        if host is None:
            host = me.peer
        # 1. The owner of the session ID, if it listens here.
        owner = self._sessions.get(session_id)
        if owner is not None:
            t = self._tunnels.get(owner)
            if t is not None and t.family == me.family and t.local == me.local:
                return owner
        # 2. The tunnel here whose peer sent it; 3. else the lowest tunnel ID here.
        on_listener = [
            tid for tid, t in self._tunnels.items() if t.family == me.family and t.local == me.local
        ]
        peers = [tid for tid in on_listener if self._tunnels[tid].peer == host]
        return min(peers or on_listener)
