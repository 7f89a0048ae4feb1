"""``l2tpv3`` against a fake daemon: requests sent, output, one-line errors, exit status."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from l2tpv3.cli import main as cli
from l2tpv3.cli import show
from l2tpv3.config import SessionConfig, TunnelConfig
from l2tpv3.constants import CONTROL_SOCKET_ENV
from l2tpv3.control import client as control
from l2tpv3.control.protocol import session_states, tunnel_states
from l2tpv3.control.server import serve
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
SESSION = SessionConfig(1000, 3000, 4000)
TUNNEL_STATE = {
    **TUNNEL.to_dict(),
    "stats": dict.fromkeys(COUNTER_NAMES, 0),
    "drops": dict.fromkeys(DROP_REASONS, 0),
}
SESSION_STATE = {
    **SESSION.to_dict(),
    "interface": "l2tpeth0",
    "peer_tunnel_id": 2000,
    "mtu": 1488,
    "send_seq": False,
    "recv_seq": False,
    "stats": dict.fromkeys(COUNTER_NAMES, 0),
}


# The expected output of the states above: show formats the records the client reads.
def format_sessions(states: list[dict[str, Any]], stats: bool) -> str:
    return show.format_sessions(session_states(states), stats)


def format_tunnels(states: list[dict[str, Any]], stats: bool) -> str:
    return show.format_tunnels(tunnel_states(states), stats)


def json_tunnels(states: list[dict[str, Any]], stats: bool) -> str:
    return show.json_tunnels(tunnel_states(states), stats)


class FakeDaemon:
    """control.serve on a Unix socket, in a thread: records requests, answers as told."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.requests: list[dict[str, Any]] = []
        self.answers: dict[str, dict[str, Any]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    async def _handle(self, message: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(message)
        return self.answers.get(message.get("op", ""), {"ok": True, "result": None})

    def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(serve(self.path, self._handle), self._loop)
        self._server = future.result(timeout=10)

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # A Unix socket path must fit in 108 bytes; pytest's tmp_path may not.
    path = Path(tempfile.mkdtemp(prefix="l2cli"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDaemon]:
    monkeypatch.delenv(CONTROL_SOCKET_ENV, raising=False)
    fake = FakeDaemon(str(short_dir / "d.sock"))
    fake.start()
    yield fake
    fake.stop()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def one_error_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("Error: "), err
    return err


# ---------------------------------------------------------------------------------------
# Requests and output.


def test_add_tunnel(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(
        capsys,
        "-S",
        daemon.path,
        "add",
        "tunnel",
        "tunnel_id",
        "1000",
        "peer_tunnel_id",
        "2000",
        "encap",
        "udp",
        "local",
        "1.1.1.2",
        "remote",
        "2.2.2.2",
        "udp_sport",
        "6000",
        "udp_dport",
        "5000",
    )
    assert (status, out, err) == (0, "", "")
    assert daemon.requests == [{"op": "add_tunnel", "config": TUNNEL.to_dict()}]


def test_add_session_prints_warnings(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(
        capsys,
        "-S",
        daemon.path,
        "a",
        "session",
        "tid",
        "1000",
        "sid",
        "3000",
        "psid",
        "4000",
        "offset",
        "0",
        "peer_offset",
        "0",
    )
    assert (status, out) == (0, "")
    assert err == 'Ignoring option "offset"\nIgnoring option "peer_offset"\n'
    assert daemon.requests == [{"op": "add_session", "config": SESSION.to_dict()}]


def test_del(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "-S", daemon.path, "del", "session", "tid", "1", "sid", "2") == (0, "", "")
    assert run(capsys, "-S", daemon.path, "delete", "tunnel", "tid", "1") == (0, "", "")
    assert daemon.requests == [
        {"op": "del_session", "tunnel_id": 1, "session_id": 2},
        {"op": "del_tunnel", "tunnel_id": 1},
    ]


def test_show_tunnel(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.answers["show_tunnels"] = {"ok": True, "result": [TUNNEL_STATE]}
    status, out, err = run(capsys, "-S", daemon.path, "show", "tunnel")
    assert (status, err) == (0, "")
    assert out == (
        "Tunnel 1000, encap UDP\n"
        "  From 1.1.1.2 to 2.2.2.2\n"
        "  Peer tunnel 2000\n"
        "  UDP source / dest ports: 6000/5000\n"
        "  UDP checksum: disabled\n"
    )
    assert daemon.requests == [{"op": "show_tunnels"}]


def test_show_session_with_filters(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.answers["show_sessions"] = {"ok": True, "result": [SESSION_STATE]}
    status, out, err = run(capsys, "-S", daemon.path, "ls", "session", "tid", "1000", "sid", "3000")
    assert (status, err) == (0, "")
    assert out == format_sessions([SESSION_STATE], stats=False)
    assert daemon.requests == [{"op": "show_sessions", "tunnel_id": 1000, "session_id": 3000}]


@pytest.mark.parametrize(
    ("options", "as_json", "stats"),
    [
        (["-j"], True, False),
        (["-json"], True, False),
        (["--json"], True, False),
        (["-s"], False, True),
        (["-stats"], False, True),
        (["--statistics"], False, True),
        (["-j", "-s"], True, True),
        (["-s", "-s", "-js"], True, True),
    ],
)
def test_show_options(
    daemon: FakeDaemon,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    as_json: bool,
    stats: bool,
) -> None:
    daemon.answers["show_tunnels"] = {"ok": True, "result": [TUNNEL_STATE]}
    status, out, err = run(capsys, *options, "-S", daemon.path, "show", "tunnel")
    assert (status, err) == (0, "")
    if as_json:
        assert out == json_tunnels([TUNNEL_STATE], stats)
        assert ("stats" in json.loads(out)[0]) is stats
    else:
        assert out == format_tunnels([TUNNEL_STATE], stats)
        assert ("statistics:" in out) is stats


def test_l2tp_word_is_accepted(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.answers["show_tunnels"] = {"ok": True, "result": []}
    assert run(capsys, "-S", daemon.path, "l2tp", "show", "tunnel") == (0, "", "")
    assert daemon.requests == [{"op": "show_tunnels"}]


# ---------------------------------------------------------------------------------------
# Where the socket is.


def test_socket_from_environment(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONTROL_SOCKET_ENV, daemon.path)
    assert run(capsys, "del", "tunnel", "tid", "9") == (0, "", "")
    assert daemon.requests == [{"op": "del_tunnel", "tunnel_id": 9}]


def test_socket_option_beats_environment(
    daemon: FakeDaemon,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    short_dir: Path,
) -> None:
    monkeypatch.setenv(CONTROL_SOCKET_ENV, str(short_dir / "nothing.sock"))
    assert run(capsys, "--socket", daemon.path, "del", "tunnel", "tid", "9") == (0, "", "")
    assert run(capsys, f"--socket={daemon.path}", "del", "tunnel", "tid", "8") == (0, "", "")
    assert len(daemon.requests) == 2


def test_default_socket(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(CONTROL_SOCKET_ENV, raising=False)
    sent: list[str] = []

    def fake_request(path: str, message: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        sent.append(path)
        return {"ok": True, "result": None}

    monkeypatch.setattr(control, "request", fake_request)
    assert run(capsys, "del", "tunnel", "tid", "1") == (0, "", "")
    monkeypatch.setenv(CONTROL_SOCKET_ENV, "")
    assert run(capsys, "del", "tunnel", "tid", "1") == (0, "", "")
    assert sent == ["/run/l2tpv3.sock", "/run/l2tpv3.sock"]


# ---------------------------------------------------------------------------------------
# Errors: one line on stderr, and the exit status.


def test_daemon_unreachable(short_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "-S", str(short_dir / "none.sock"), "show", "tunnel")
    assert (status, out) == (1, "")
    assert "cannot reach l2tpv3d" in one_error_line(err)


def test_daemon_refuses(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.answers["add_session"] = {"ok": False, "error": "tunnel 1 does not exist"}
    status, out, err = run(
        capsys, "-S", daemon.path, "add", "session", "tid", "1", "sid", "2", "psid", "3"
    )
    assert (status, out, err) == (2, "", "Error: tunnel 1 does not exist\n")


def test_daemon_refusal_on_two_lines_stays_one(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.answers["del_tunnel"] = {"ok": False, "error": "first\nsecond"}
    status, _, err = run(capsys, "-S", daemon.path, "del", "tunnel", "tid", "1")
    assert (status, err) == (2, "Error: first second\n")


@pytest.mark.parametrize("result", [None, {"tunnel_id": 1}, [{"tunnel_id": "x"}], "text"])
def test_daemon_sends_nonsense(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str], result: object
) -> None:
    daemon.answers["show_tunnels"] = {"ok": True, "result": result}
    status, out, err = run(capsys, "-S", daemon.path, "show", "tunnel")
    assert (status, out) == (1, "")
    assert "malformed" in one_error_line(err)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["add", "tunnel", "tunnel_id", "abc"], ["tunnel_id", '"abc"']),
        (["add", "tunnel", "tid", "0"], ["tunnel_id", '"0"']),
        (["add", "tunnel", "tid", "4294967296"], ["tunnel_id", '"4294967296"']),
        (["add", "session", "tid", "1", "cookie", "123456"], ["cookie", '"123456"']),
        (["add", "tunnel", "encap", "gre"], ["encap", '"gre"']),
        (["add", "tunnel", "foo"], ['unknown option "foo"']),
        (["add", "tunnel", "tunnel_id"], ['option "tunnel_id" needs a value']),
        (["add", "tunnel", "tid", "1"], ['argument "peer_tunnel_id" is required']),
        (["add", "tid", "1"], ['argument "tunnel or session" is required']),
        (["frobnicate", "tunnel"], ['command "frobnicate" is unknown']),
        (["-x", "show", "tunnel"], ['option "-x" is unknown']),
        (["-S"], ['option "-S" needs a value']),
    ],
)
def test_bad_command_lines(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str], argv: list[str], words: list[str]
) -> None:
    status, out, err = run(capsys, "-S", daemon.path, *argv)
    assert (status, out) == (2, "")
    line = one_error_line(err)
    for word in words:
        assert word in line
    assert daemon.requests == []


@pytest.mark.parametrize("argv", [[], ["add"], ["show"], ["-j"]])
def test_usage_when_incomplete(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    status, out, err = run(capsys, *argv)
    assert (status, out) == (2, "")
    assert err == cli.USAGE


@pytest.mark.parametrize(
    "argv", [["help"], ["h"], ["-h"], ["-help"], ["--help"], ["add", "tunnel", "help"]]
)
def test_explicit_help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    status, out, err = run(capsys, *argv)
    assert (status, out, err) == (0, "", cli.USAGE)


def test_usage_text() -> None:
    assert cli.USAGE.startswith("Usage: l2tpv3 [ OPTIONS ] add tunnel\n")
    for word in (
        "reorder_timeout MS",
        "seq_policy POLICY",
        "l2tpv3 [ OPTIONS ] show session",
        CONTROL_SOCKET_ENV,
        "ID     := { 1..4294967295 }",
    ):
        assert word in cli.USAGE
    assert "ip l2tp" not in cli.USAGE


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "-V")
    assert (status, err) == (0, "")
    assert out.startswith("l2tpv3 ")


def test_subcommand_extension_point(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[cli.Options, list[str]]] = []

    def peer_config(options: cli.Options, argv: list[str]) -> int:
        calls.append((options, argv))
        return 0

    monkeypatch.setitem(cli.SUBCOMMANDS, "peer-config", peer_config)
    assert run(capsys, "-j", "-S", "/x.sock", "peer-config", "a", "b") == (0, "", "")
    assert calls == [(cli.Options(socket="/x.sock", json=True, stats=False), ["a", "b"])]


def test_no_traceback_from_the_console(short_dir: Path) -> None:
    """The real entry point, in a process of its own: one line, exit 1, no traceback."""
    env = {**os.environ, CONTROL_SOCKET_ENV: str(short_dir / "gone.sock")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[2])] + [p for p in [env.get("PYTHONPATH", "")] if p]
    )
    proc = subprocess.run(
        [sys.executable, "-m", "l2tpv3.cli", "show", "session"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stdout) == (1, "")
    assert "Traceback" not in proc.stderr
    one_error_line(proc.stderr)
