"""The control protocol between ``l2tpv3`` and ``l2tpv3d``, defined once.

One JSON object per line each way (:mod:`l2tpv3.control.client`,
:mod:`l2tpv3.control.server`). A request is ``{"op": NAME, ...}``; the answer is
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "one line"}``.

:data:`OPS` is the op table: each operation's name, its request record (how it is
written and read), the :class:`Operations` method the daemon runs for it, and the type
of its result (how the client reads it back). The daemon's dispatcher and the client
both use it, so an operation is added in this one place:

==============  =======================================  ===========================
op              request fields                            result
==============  =======================================  ===========================
add_tunnel      ``config`` (TunnelConfig.to_dict())       null
del_tunnel      ``tunnel_id``                             null
add_session     ``config`` (SessionConfig.to_dict())      null
del_session     ``tunnel_id``, ``session_id``             null
show_tunnels    optional ``tunnel_id``                    list of :class:`TunnelState`
show_sessions   optional ``tunnel_id``, ``session_id``    list of :class:`SessionState`
ping                                                      :class:`Pong`
==============  =======================================  ===========================

The state records are validated once, where they come off the socket (``from_json``,
one-line :class:`~l2tpv3.errors.ControlError` messages); ``cli.show`` only formats them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import ClassVar, Final, Protocol, TypeVar

from l2tpv3.config import SaConfig, SaDir, SessionConfig, TunnelConfig
from l2tpv3.errors import ControlError, L2TPError, StateError
from l2tpv3.proto.counters import (
    COUNTER_NAMES,
    DROP_REASONS,
    ESP_COUNTER_NAMES,
    ESP_DROP_REASONS,
    SESSION_FEATURE_COUNTERS,
)

__all__ = [
    "CAPTURE_END",
    "CAPTURE_FRAME",
    "CAPTURE_OP",
    "CAPTURE_RECORDS",
    "MAX_MESSAGE",
    "MAX_REQUEST",
    "OPS",
    "AddSa",
    "AddSession",
    "AddTunnel",
    "DelSa",
    "DelSession",
    "DelTunnel",
    "JSONObject",
    "LivenessState",
    "OffloadState",
    "Operations",
    "Ping",
    "Pong",
    "Request",
    "SaState",
    "SessionState",
    "ShowSas",
    "ShowSessions",
    "ShowTunnels",
    "TunnelState",
    "decode_request",
    "sa_states",
    "session_states",
    "tunnel_states",
]

# The longest answer the client reads (``show`` of many sessions).
MAX_MESSAGE: Final = 16 * 1024 * 1024
# The longest request line the daemon reads; a request is a few hundred bytes.
MAX_REQUEST: Final = 64 * 1024

# `l2tpv3 capture`: not an op of the table, since its answer is followed by a stream.
# The request is {"op": "capture", "tunnel_id": ID, "session_id": ID (0: all)}; the
# answer line is {"ok": true, "result": null} (or an error answer, and the end); then
# frames of CAPTURE_FRAME (kind, capture_lost so far, length of what follows) until the
# client closes the connection or the daemon ends the capture: CAPTURE_RECORDS frames
# carry records (io/capture.py: RECORD, then the packet, each), possibly none; the one
# CAPTURE_END frame carries one line of text, why it ended.
CAPTURE_OP: Final = "capture"
CAPTURE_FRAME: Final = struct.Struct("<BQI")
CAPTURE_RECORDS: Final = 1
CAPTURE_END: Final = 2

# A JSON object as json.loads gives it.
JSONObject = Mapping[str, object]

_R_co = TypeVar("_R_co", covariant=True)

_TUNNEL_FIELDS = frozenset(f.name for f in fields(TunnelConfig))
_SESSION_FIELDS = frozenset(f.name for f in fields(SessionConfig))


# -- state records -------------------------------------------------------------------


def _counter(state: JSONObject, key: str, name: str) -> int:
    table = state.get(key) or {}
    if not isinstance(table, Mapping):
        raise ControlError(f'l2tpv3d sent a malformed "{key}" table')
    value = table.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ControlError(f'l2tpv3d sent a malformed counter "{name}": {value!r}')
    return value


def _stats(state: JSONObject) -> dict[str, int]:
    return {name: _counter(state, "stats", name) for name in COUNTER_NAMES}


def _drops(state: JSONObject, known: tuple[str, ...]) -> dict[str, int]:
    table = state.get("drops") or {}
    if not isinstance(table, Mapping):
        raise ControlError('l2tpv3d sent a malformed "drops" table')
    # Reasons we know come first, always; any others the daemon counts follow in its
    # order, so a newer daemon's reasons still show.
    names = list(known) + [name for name in table if name not in known]
    return {name: _counter(state, "drops", name) for name in names}


def _features(state: JSONObject) -> dict[str, int]:
    table = state.get("features") or {}
    if not isinstance(table, Mapping):
        raise ControlError('l2tpv3d sent a malformed "features" table')
    names = list(SESSION_FEATURE_COUNTERS) + [n for n in table if n not in SESSION_FEATURE_COUNTERS]
    return {name: _counter(state, "features", name) for name in names}


def _config_fields(state: JSONObject, names: frozenset[str]) -> dict[str, object]:
    return {k: v for k, v in state.items() if k in names}


@dataclass(frozen=True, slots=True)
class OffloadState:
    """What a tunnel's data path offloads now (``show -s -j``'s ``"offload"``).

    ``udp_gso``: super-frames leave in one send of many datagrams (UDP_SEGMENT);
    ``udp_gro``: datagrams arrive many per receive (UDP_GRO); ``tap_tso``: the sessions'
    TAPs hand over and take TCP super-frames (IFF_VNET_HDR). When UDP GSO is off,
    ``limited_by`` names what rules it out (an option such as ``udp_csum off``) and
    ``lifted_by`` what would lift it; both None when nothing limits it."""

    udp_gso: bool
    udp_gro: bool
    tap_tso: bool
    limited_by: str | None = None
    lifted_by: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "udp_gso": self.udp_gso,
            "udp_gro": self.udp_gro,
            "tap_tso": self.tap_tso,
            "limited_by": self.limited_by,
            "lifted_by": self.lifted_by,
        }

    @classmethod
    def from_json(cls, state: object) -> OffloadState:
        if isinstance(state, Mapping):
            gso, gro, tso = state.get("udp_gso"), state.get("udp_gro"), state.get("tap_tso")
            limit, lift = state.get("limited_by"), state.get("lifted_by")
            if (
                isinstance(gso, bool)
                and isinstance(gro, bool)
                and isinstance(tso, bool)
                and (limit is None or isinstance(limit, str))
                and (lift is None or isinstance(lift, str))
            ):
                return cls(gso, gro, tso, limit, lift)
        raise ControlError(f'l2tpv3d sent a malformed "offload": {state!r}')


@dataclass(frozen=True, slots=True)
class TunnelState:
    """One tunnel as ``show_tunnels`` reports it: its config, counters and drops.

    ``waiting``: its local address is not (yet) usable on the host; the tunnel's socket
    is bound and it carries traffic once the address appears. Sent only when true.
    ``offload``: what its data path offloads (None when the daemon did not send it)."""

    config: TunnelConfig
    stats: Mapping[str, int]
    drops: Mapping[str, int]
    waiting: bool = False
    offload: OffloadState | None = None
    # HELLO counters of the tunnel (proto/liveness.py ControlChannel), sent only when
    # the peer or we sent any control message.
    control: Mapping[str, int] | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = self.config.to_dict()
        out["stats"] = dict(self.stats)
        out["drops"] = dict(self.drops)
        if self.waiting:
            out["waiting"] = True
        if self.offload is not None:
            out["offload"] = self.offload.to_json()
        if self.control:
            out["control"] = dict(self.control)
        return out

    @classmethod
    def from_json(cls, state: object) -> TunnelState:
        if not isinstance(state, Mapping):
            raise ControlError("l2tpv3d sent a malformed answer: expected a list of objects")
        try:
            config = TunnelConfig.from_dict(_config_fields(state, _TUNNEL_FIELDS))
        except (L2TPError, TypeError, ValueError) as exc:
            raise ControlError(f"l2tpv3d sent a malformed tunnel: {exc}") from None
        waiting = state.get("waiting", False)
        if not isinstance(waiting, bool):
            raise ControlError(f'l2tpv3d sent a malformed "waiting": {waiting!r}')
        offload = state.get("offload")
        control = state.get("control")
        if control is not None and (
            not isinstance(control, Mapping)
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in control.values())
        ):
            raise ControlError('l2tpv3d sent a malformed "control" table')
        return cls(
            config,
            _stats(state),
            _drops(state, DROP_REASONS),
            waiting,
            None if offload is None else OffloadState.from_json(offload),
            {str(k): int(v) for k, v in control.items()} if control else None,
        )


def _opt_float(state: Mapping[str, object], key: str) -> float | None:
    value = state.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ControlError(f'l2tpv3d sent a malformed "{key}": {value!r}')
    return float(value)


@dataclass(frozen=True, slots=True)
class LivenessState:
    """A session's liveness as ``show`` reports it (only when liveness is not off).

    ``last_rx_ago``: seconds since the session last received a packet; ``last_seen_ago``:
    since the last sign of life of its mode; None: never. ``control``: the tunnel's
    HELLO counters (proto/liveness.py ControlChannel.stats)."""

    state: str
    last_rx_ago: float | None
    last_seen_ago: float | None
    transitions: int
    mac: str | None
    control: Mapping[str, int]

    def to_json(self) -> dict[str, object]:
        return {
            "state": self.state,
            "last_rx_ago": self.last_rx_ago,
            "last_seen_ago": self.last_seen_ago,
            "transitions": self.transitions,
            "mac": self.mac,
            "control": dict(self.control),
        }

    @classmethod
    def from_json(cls, state: object) -> LivenessState:
        if not isinstance(state, Mapping):
            raise ControlError('l2tpv3d sent a malformed "liveness_state"')
        st = state.get("state")
        if st not in ("up", "down"):
            raise ControlError(f"l2tpv3d sent a malformed liveness state: {st!r}")
        transitions = state.get("transitions", 0)
        if isinstance(transitions, bool) or not isinstance(transitions, int):
            raise ControlError(f"l2tpv3d sent malformed liveness transitions: {transitions!r}")
        mac = state.get("mac")
        if mac is not None and not isinstance(mac, str):
            raise ControlError(f"l2tpv3d sent a malformed liveness mac: {mac!r}")
        control = state.get("control") or {}
        if not isinstance(control, Mapping) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in control.values()
        ):
            raise ControlError("l2tpv3d sent malformed liveness control counters")
        return cls(
            str(st),
            _opt_float(state, "last_rx_ago"),
            _opt_float(state, "last_seen_ago"),
            transitions,
            mac,
            {str(k): int(v) for k, v in control.items()},
        )


@dataclass(frozen=True, slots=True)
class SessionState:
    """One session as ``show_sessions`` reports it.

    ``send_seq``/``recv_seq`` are the current sequencing state (in LAC mode the peer
    can switch our sending on), not the configured mode. ``mtu`` and ``drops`` are
    None when the daemon did not send them.
    """

    config: SessionConfig
    interface: str
    peer_tunnel_id: int
    mtu: int | None
    send_seq: bool
    recv_seq: bool
    stats: Mapping[str, int]
    drops: Mapping[str, int] | None
    # What the daemon's own features did (proto.counters.SESSION_FEATURE_COUNTERS).
    features: Mapping[str, int] | None = None
    liveness: LivenessState | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = self.config.to_dict()
        if self.liveness is not None:
            out["liveness_state"] = self.liveness.to_json()
        out["interface"] = self.interface
        out["peer_tunnel_id"] = self.peer_tunnel_id
        if self.mtu is not None:
            out["mtu"] = self.mtu
        out["send_seq"] = self.send_seq
        out["recv_seq"] = self.recv_seq
        out["stats"] = dict(self.stats)
        if self.drops is not None:
            out["drops"] = dict(self.drops)
        if self.features is not None:
            out["features"] = dict(self.features)
        return out

    @classmethod
    def from_json(cls, state: object) -> SessionState:
        if not isinstance(state, Mapping):
            raise ControlError("l2tpv3d sent a malformed answer: expected a list of objects")
        try:
            config = SessionConfig.from_dict(_config_fields(state, _SESSION_FIELDS))
        except (L2TPError, TypeError, ValueError) as exc:
            raise ControlError(f"l2tpv3d sent a malformed session: {exc}") from None
        peer_tunnel_id = state.get("peer_tunnel_id")
        if isinstance(peer_tunnel_id, bool) or not isinstance(peer_tunnel_id, int):
            raise ControlError(
                f"l2tpv3d sent a malformed session: peer_tunnel_id {peer_tunnel_id!r}"
            )
        interface = state.get("interface") or ""
        if not isinstance(interface, str):
            raise ControlError(f"l2tpv3d sent a malformed session: interface {interface!r}")
        mtu = state.get("mtu")
        if mtu is not None and (isinstance(mtu, bool) or not isinstance(mtu, int)):
            raise ControlError(f"l2tpv3d sent a malformed session: mtu {mtu!r}")
        return cls(
            config,
            interface,
            peer_tunnel_id,
            mtu,
            bool(state.get("send_seq", config.seq.send)),
            bool(state.get("recv_seq", config.seq.recv)),
            _stats(state),
            _drops(state, ()) if "drops" in state else None,
            _features(state) if "features" in state else None,
            LivenessState.from_json(state["liveness_state"]) if "liveness_state" in state else None,
        )


def _states(result: object) -> list[object]:
    # Straight from the daemon's JSON: refuse anything but a list of objects with a
    # message, never a traceback.
    if isinstance(result, list | tuple) and all(isinstance(s, Mapping) for s in result):
        return list(result)
    raise ControlError("l2tpv3d sent a malformed answer: expected a list of objects")


def tunnel_states(result: object) -> list[TunnelState]:
    """The ``show_tunnels`` result, validated."""
    return [TunnelState.from_json(s) for s in _states(result)]


def session_states(result: object) -> list[SessionState]:
    """The ``show_sessions`` result, validated."""
    return [SessionState.from_json(s) for s in _states(result)]


@dataclass(frozen=True, slots=True)
class Pong:
    """The ``ping`` result: who answered."""

    version: str
    pid: int

    def to_json(self) -> dict[str, object]:
        return {"version": self.version, "pid": self.pid}

    @classmethod
    def from_json(cls, result: object) -> Pong:
        if isinstance(result, Mapping):
            version, pid = result.get("version"), result.get("pid")
            if isinstance(version, str) and isinstance(pid, int) and not isinstance(pid, bool):
                return cls(version, pid)
        raise ControlError("l2tpv3d sent a malformed answer to ping")


# -- what the daemon provides ---------------------------------------------------------


class Operations(Protocol):
    """The daemon side of the op table: one method per operation."""

    def add_tunnel(self, config: TunnelConfig) -> None: ...
    def del_tunnel(self, tunnel_id: int) -> None: ...
    def add_session(self, config: SessionConfig) -> None: ...
    def del_session(self, tunnel_id: int, session_id: int) -> None: ...
    def show_tunnels(self, tunnel_id: int | None = None) -> list[TunnelState]: ...
    def show_sessions(
        self, tunnel_id: int | None = None, session_id: int | None = None
    ) -> list[SessionState]: ...
    def ping(self) -> Pong: ...
    def add_sa(self, config: SaConfig) -> None: ...
    def del_sa(self, tunnel_id: int, dir: str, spi: int) -> None: ...
    def show_sas(self, tunnel_id: int | None = None) -> list[SaState]: ...


# -- requests -------------------------------------------------------------------------


class Request(Protocol[_R_co]):
    """One request record: written by the client, read and run by the daemon, whose
    JSON result the client reads back as ``_R_co``."""

    op: ClassVar[str]

    def to_json(self) -> dict[str, object]: ...
    def run(self, ops: Operations) -> object:
        """Run on the daemon; the JSON result."""

    def result(self, result: object) -> _R_co:
        """Read the daemon's JSON result (raises ControlError if malformed)."""


def _int(msg: JSONObject, key: str) -> int:
    value = msg.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise StateError(f'argument "{key}" is required')
    return value


def _opt_int(msg: JSONObject, key: str) -> int | None:
    return None if msg.get(key) is None else _int(msg, key)


def _config(msg: JSONObject) -> dict[str, object]:
    config = msg["config"]
    if not isinstance(config, dict):
        raise TypeError("config must be an object")
    return config


@dataclass(frozen=True, slots=True)
class AddTunnel:
    op: ClassVar[str] = "add_tunnel"
    config: TunnelConfig

    def to_json(self) -> dict[str, object]:
        return {"op": self.op, "config": self.config.to_dict()}

    @classmethod
    def from_json(cls, msg: JSONObject) -> AddTunnel:
        return cls(TunnelConfig.from_dict(_config(msg)))

    def run(self, ops: Operations) -> None:
        ops.add_tunnel(self.config)

    def result(self, result: object) -> None:
        return None


@dataclass(frozen=True, slots=True)
class DelTunnel:
    op: ClassVar[str] = "del_tunnel"
    tunnel_id: int

    def to_json(self) -> dict[str, object]:
        return {"op": self.op, "tunnel_id": self.tunnel_id}

    @classmethod
    def from_json(cls, msg: JSONObject) -> DelTunnel:
        return cls(_int(msg, "tunnel_id"))

    def run(self, ops: Operations) -> None:
        ops.del_tunnel(self.tunnel_id)

    def result(self, result: object) -> None:
        return None


@dataclass(frozen=True, slots=True)
class AddSession:
    op: ClassVar[str] = "add_session"
    config: SessionConfig

    def to_json(self) -> dict[str, object]:
        return {"op": self.op, "config": self.config.to_dict()}

    @classmethod
    def from_json(cls, msg: JSONObject) -> AddSession:
        config = _config(msg)
        # Nothing the control socket says may run a command: hooks are config-file only.
        if any(config.get(hook) for hook in ("on_up", "on_down")):
            raise StateError("on_up/on_down hooks are taken from the config file only")
        return cls(SessionConfig.from_dict(config))

    def run(self, ops: Operations) -> None:
        ops.add_session(self.config)

    def result(self, result: object) -> None:
        return None


@dataclass(frozen=True, slots=True)
class DelSession:
    op: ClassVar[str] = "del_session"
    tunnel_id: int
    session_id: int

    def to_json(self) -> dict[str, object]:
        return {"op": self.op, "tunnel_id": self.tunnel_id, "session_id": self.session_id}

    @classmethod
    def from_json(cls, msg: JSONObject) -> DelSession:
        return cls(_int(msg, "tunnel_id"), _int(msg, "session_id"))

    def run(self, ops: Operations) -> None:
        ops.del_session(self.tunnel_id, self.session_id)

    def result(self, result: object) -> None:
        return None


@dataclass(frozen=True, slots=True)
class ShowTunnels:
    op: ClassVar[str] = "show_tunnels"
    tunnel_id: int | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"op": self.op}
        if self.tunnel_id is not None:
            out["tunnel_id"] = self.tunnel_id
        return out

    @classmethod
    def from_json(cls, msg: JSONObject) -> ShowTunnels:
        return cls(_opt_int(msg, "tunnel_id"))

    def run(self, ops: Operations) -> list[dict[str, object]]:
        return [state.to_json() for state in ops.show_tunnels(self.tunnel_id)]

    def result(self, result: object) -> list[TunnelState]:
        return tunnel_states(result)


@dataclass(frozen=True, slots=True)
class ShowSessions:
    op: ClassVar[str] = "show_sessions"
    tunnel_id: int | None = None
    session_id: int | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"op": self.op}
        if self.tunnel_id is not None:
            out["tunnel_id"] = self.tunnel_id
        if self.session_id is not None:
            out["session_id"] = self.session_id
        return out

    @classmethod
    def from_json(cls, msg: JSONObject) -> ShowSessions:
        return cls(_opt_int(msg, "tunnel_id"), _opt_int(msg, "session_id"))

    def run(self, ops: Operations) -> list[dict[str, object]]:
        return [state.to_json() for state in ops.show_sessions(self.tunnel_id, self.session_id)]

    def result(self, result: object) -> list[SessionState]:
        return session_states(result)


@dataclass(frozen=True, slots=True)
class Ping:
    op: ClassVar[str] = "ping"

    def to_json(self) -> dict[str, object]:
        return {"op": self.op}

    @classmethod
    def from_json(cls, msg: JSONObject) -> Ping:
        return cls()

    def run(self, ops: Operations) -> dict[str, object]:
        return ops.ping().to_json()

    def result(self, result: object) -> Pong:
        return Pong.from_json(result)


# The op table: op name -> how its request is read (the record type, which carries the
# daemon method it runs and the type of its result).
OPS: Final[Mapping[str, Callable[[JSONObject], Request[object]]]] = {
    AddTunnel.op: AddTunnel.from_json,
    DelTunnel.op: DelTunnel.from_json,
    AddSession.op: AddSession.from_json,
    DelSession.op: DelSession.from_json,
    ShowTunnels.op: ShowTunnels.from_json,
    ShowSessions.op: ShowSessions.from_json,
    Ping.op: Ping.from_json,
    # ESP (issue 9)
    "add_sa": lambda msg: AddSa.from_json(msg),
    "del_sa": lambda msg: DelSa.from_json(msg),
    "show_sas": lambda msg: ShowSas.from_json(msg),
}


def decode_request(msg: JSONObject) -> Request[object]:
    """The request record for one JSON request (StateError for an unknown op; the
    readers raise StateError, TypeError, ValueError or KeyError for bad fields)."""
    op = msg.get("op")
    reader = OPS.get(op) if isinstance(op, str) else None
    if reader is None:
        raise StateError(f'unknown operation "{op}"')
    return reader(msg)


# -- ESP security associations (issue 9) ------------------------------------------------
#
# add_sa    ``config`` (SaConfig.to_dict(keys=True): the keys travel to the daemon over
#           the private control socket, and nowhere else)                  null
# del_sa    ``tunnel_id``, ``dir``, ``spi``                                 null
# show_sas  optional ``tunnel_id``                        list of :class:`SaState`

_SA_SHOWN = (
    "tunnel_id",
    "dir",
    "spi",
    "aead",
    "enc",
    "auth",
    "replay_window",
    "esn",
    "encap_sport",
    "encap_dport",
)


@dataclass(frozen=True, slots=True)
class SaState:
    """One SA as ``show_sas`` reports it: what it is (never its keys), its counters
    (``ESP_COUNTER_NAMES``) and drops (``ESP_DROP_REASONS``; for an inbound SA also
    the tunnel's unknown-SPI and plaintext drops)."""

    info: Mapping[str, object]
    stats: Mapping[str, int]
    drops: Mapping[str, int]

    @property
    def tunnel_id(self) -> int:
        value = self.info.get("tunnel_id")
        return value if isinstance(value, int) else 0

    def to_json(self) -> dict[str, object]:
        out = {k: v for k, v in self.info.items() if k in _SA_SHOWN}
        out["stats"] = dict(self.stats)
        out["drops"] = dict(self.drops)
        return out

    @classmethod
    def from_json(cls, state: object) -> SaState:
        if not isinstance(state, Mapping):
            raise ControlError("l2tpv3d sent a malformed answer: expected a list of objects")
        info = {k: v for k, v in state.items() if k in _SA_SHOWN}
        for key in ("tunnel_id", "spi"):
            value = info.get(key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ControlError(f"l2tpv3d sent a malformed SA: {key} {value!r}")
        if info.get("dir") not in ("in", "out"):
            raise ControlError(f"l2tpv3d sent a malformed SA: dir {info.get('dir')!r}")
        stats = {name: _counter(state, "stats", name) for name in ESP_COUNTER_NAMES}
        return cls(info, stats, _drops(state, ESP_DROP_REASONS))


def sa_states(result: object) -> list[SaState]:
    """The ``show_sas`` result, validated."""
    return [SaState.from_json(s) for s in _states(result)]


@dataclass(frozen=True, slots=True)
class AddSa:
    op: ClassVar[str] = "add_sa"
    config: SaConfig

    def to_json(self) -> dict[str, object]:
        return {"op": self.op, "config": self.config.to_dict(keys=True)}

    @classmethod
    def from_json(cls, msg: JSONObject) -> AddSa:
        return cls(SaConfig.from_dict(_config(msg)))

    def run(self, ops: Operations) -> None:
        ops.add_sa(self.config)

    def result(self, result: object) -> None:
        return None


@dataclass(frozen=True, slots=True)
class DelSa:
    op: ClassVar[str] = "del_sa"
    tunnel_id: int
    dir: SaDir
    spi: int

    def to_json(self) -> dict[str, object]:
        return {"op": self.op, "tunnel_id": self.tunnel_id, "dir": self.dir.value, "spi": self.spi}

    @classmethod
    def from_json(cls, msg: JSONObject) -> DelSa:
        direction = msg.get("dir")
        if direction not in ("in", "out"):
            raise StateError('argument "dir" is required: in or out')
        return cls(_int(msg, "tunnel_id"), SaDir(str(direction)), _int(msg, "spi"))

    def run(self, ops: Operations) -> None:
        ops.del_sa(self.tunnel_id, self.dir.value, self.spi)

    def result(self, result: object) -> None:
        return None


@dataclass(frozen=True, slots=True)
class ShowSas:
    op: ClassVar[str] = "show_sas"
    tunnel_id: int | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"op": self.op}
        if self.tunnel_id is not None:
            out["tunnel_id"] = self.tunnel_id
        return out

    @classmethod
    def from_json(cls, msg: JSONObject) -> ShowSas:
        return cls(_opt_int(msg, "tunnel_id"))

    def run(self, ops: Operations) -> list[dict[str, object]]:
        return [state.to_json() for state in ops.show_sas(self.tunnel_id)]

    def result(self, result: object) -> list[SaState]:
        return sa_states(result)
