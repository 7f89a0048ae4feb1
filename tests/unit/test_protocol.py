"""The control protocol's op table and state records, without a socket."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import l2tpv3
from l2tpv3.config import SaConfig, SaDir, SecretKey, SeqMode, SessionConfig, TunnelConfig
from l2tpv3.control import protocol
from l2tpv3.control.protocol import (
    OPS,
    AddSa,
    AddSession,
    AddTunnel,
    DelSa,
    DelSession,
    DelTunnel,
    Ping,
    Pong,
    SaState,
    SessionState,
    ShowSas,
    ShowSessions,
    ShowTunnels,
    TunnelState,
)
from l2tpv3.control.server import answer
from l2tpv3.errors import ControlError, StateError
from l2tpv3.proto.counters import COUNTER_NAMES, DROP_REASONS

TUNNEL = TunnelConfig.from_dict(
    {
        "tunnel_id": 1000,
        "peer_tunnel_id": 2000,
        "local": "1.1.1.2",
        "remote": "2.2.2.2",
        "udp_sport": 6000,
        "udp_dport": 5000,
    }
)
SESSION = SessionConfig(1000, 3000, 4000, cookie=b"\x01\x02\x03\x04", seq=SeqMode.RECV)
TSTATE = TunnelState(TUNNEL, dict.fromkeys(COUNTER_NAMES, 1), dict.fromkeys(DROP_REASONS, 2))
SSTATE = SessionState(
    SESSION,
    "l2tpeth0",
    2000,
    1488,
    True,
    True,
    dict.fromkeys(COUNTER_NAMES, 3),
    {"frame_too_short": 0, "frame_too_long": 0, "tap_write_failed": 4},
)


class FakeOps:
    """Records what the dispatcher asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def add_tunnel(self, config: TunnelConfig) -> None:
        self.calls.append(("add_tunnel", config))

    def del_tunnel(self, tunnel_id: int) -> None:
        if tunnel_id == 404:
            raise StateError("tunnel 404 does not exist")
        self.calls.append(("del_tunnel", tunnel_id))

    def add_session(self, config: SessionConfig) -> None:
        self.calls.append(("add_session", config))

    def del_session(self, tunnel_id: int, session_id: int) -> None:
        self.calls.append(("del_session", tunnel_id, session_id))

    def show_tunnels(self, tunnel_id: int | None = None) -> list[TunnelState]:
        self.calls.append(("show_tunnels", tunnel_id))
        return [TSTATE]

    def show_sessions(
        self, tunnel_id: int | None = None, session_id: int | None = None
    ) -> list[SessionState]:
        self.calls.append(("show_sessions", tunnel_id, session_id))
        return [SSTATE]

    def ping(self) -> Pong:
        raise RuntimeError("boom")

    def add_sa(self, config: SaConfig) -> None:
        self.calls.append(("add_sa", config))

    def del_sa(self, tunnel_id: int, dir: str, spi: int) -> None:
        self.calls.append(("del_sa", tunnel_id, dir, spi))

    def show_sas(self, tunnel_id: int | None = None) -> list[SaState]:
        self.calls.append(("show_sas", tunnel_id))
        return []


REQUESTS: list[protocol.Request[object]] = [
    AddTunnel(TUNNEL),
    DelTunnel(7),
    AddSession(SESSION),
    DelSession(7, 8),
    ShowTunnels(),
    ShowTunnels(5),
    ShowSessions(),
    ShowSessions(5, 6),
    Ping(),
    AddSa(SaConfig(1, SaDir.OUT, 0x1000, SecretKey(bytes(20)), aead="rfc4106(gcm(aes))")),
    DelSa(1, SaDir.IN, 0x1001),
    ShowSas(),
    ShowSas(1),
]


def test_op_table_covers_every_request() -> None:
    assert sorted(OPS) == sorted({type(r).op for r in REQUESTS})


@pytest.mark.parametrize("req", REQUESTS, ids=repr)
def test_requests_round_trip(req: protocol.Request[object]) -> None:
    wire = json.loads(json.dumps(req.to_json()))
    assert protocol.decode_request(wire) == req


def test_request_json_is_what_it_always_was() -> None:
    assert AddTunnel(TUNNEL).to_json() == {"op": "add_tunnel", "config": TUNNEL.to_dict()}
    assert DelSession(1, 2).to_json() == {"op": "del_session", "tunnel_id": 1, "session_id": 2}
    assert ShowTunnels().to_json() == {"op": "show_tunnels"}
    assert ShowSessions(None, 4).to_json() == {"op": "show_sessions", "session_id": 4}


def test_state_json_keys_in_order() -> None:
    assert list(TSTATE.to_json()) == [*TUNNEL.to_dict(), "stats", "drops"]
    assert list(SSTATE.to_json()) == [
        *SESSION.to_dict(),
        "interface",
        "peer_tunnel_id",
        "mtu",
        "send_seq",
        "recv_seq",
        "stats",
        "drops",
    ]


def test_states_round_trip() -> None:
    assert TunnelState.from_json(json.loads(json.dumps(TSTATE.to_json()))) == TSTATE
    assert SessionState.from_json(json.loads(json.dumps(SSTATE.to_json()))) == SSTATE


def test_dispatch_runs_the_daemon_method() -> None:
    ops = FakeOps()
    assert answer(ops, {"op": "del_session", "tunnel_id": 1, "session_id": 2}) == {
        "ok": True,
        "result": None,
    }
    assert answer(ops, {"op": "show_sessions", "tunnel_id": 1}) == {
        "ok": True,
        "result": [SSTATE.to_json()],
    }
    assert ops.calls == [("del_session", 1, 2), ("show_sessions", 1, None)]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"op": "frob"}, 'unknown operation "frob"'),
        ({}, 'unknown operation "None"'),
        ({"op": "del_tunnel"}, 'argument "tunnel_id" is required'),
        ({"op": "del_tunnel", "tunnel_id": True}, 'argument "tunnel_id" is required'),
        ({"op": "del_tunnel", "tunnel_id": 404}, "tunnel 404 does not exist"),
        ({"op": "add_tunnel"}, "malformed request: 'config'"),
        ({"op": "ping"}, "internal error: RuntimeError('boom')"),
    ],
)
def test_dispatch_errors_are_one_line(message: dict[str, object], error: str) -> None:
    assert answer(FakeOps(), message) == {"ok": False, "error": error}


def test_results_are_read_back_typed() -> None:
    assert ShowTunnels().result([TSTATE.to_json()]) == [TSTATE]
    assert Ping().result({"version": "1", "pid": 2}) == Pong("1", 2)
    with pytest.raises(ControlError, match="malformed"):
        Ping().result({"version": 1})
    with pytest.raises(ControlError, match="malformed"):
        ShowSessions().result([{**SSTATE.to_json(), "mtu": "big"}])


def test_public_api() -> None:
    for name in l2tpv3.__all__:
        assert getattr(l2tpv3, name) is not None, name
    assert l2tpv3.choose().name in ("python", "cython")


def test_import_is_light() -> None:
    probe = (
        "import sys, l2tpv3\n"
        "heavy = ('pytun', 'uvloop', 'scapy', 'asyncio', 'l2tpv3.control.client',\n"
        "         'l2tpv3.control.server', 'l2tpv3.io.tap', 'l2tpv3.fast._fastpath')\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    env = {**os.environ}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[2])] + [p for p in [env.get("PYTHONPATH", "")] if p]
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
