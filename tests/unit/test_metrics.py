"""``l2tpv3d --metrics``: metric and label names, values from the state records, the
address syntax, and the HTTP endpoint on loopback (issue 12 item 4)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from l2tpv3.config import SeqMode, SessionConfig, TunnelConfig
from l2tpv3.control.protocol import (
    LivenessState,
    OffloadState,
    Pong,
    SaState,
    SessionState,
    TunnelState,
)
from l2tpv3.daemon.metrics import (
    RECORDS,
    Endpoint,
    Facts,
    MetricsServer,
    Record,
    Row,
    Scrape,
    StateCollector,
    direct,
    on_loop,
    parse_endpoint,
)
from l2tpv3.errors import L2TPError
from l2tpv3.proto.counters import (
    COUNTER_NAMES,
    DROP_REASONS,
    ESP_COUNTER_NAMES,
    ESP_DROP_REASONS,
    SESSION_DROP_REASONS,
)

FACTS = Facts("9.9.9", "cython", 1_700_000_000.5)


class FakeDaemon:
    """The two operations the collector reads, with distinct counter values."""

    def __init__(self) -> None:
        t = TunnelConfig(
            1000, 2000, ipaddress.ip_address("10.5.0.1"), ipaddress.ip_address("10.5.0.2"),
            udp_sport=5000, udp_dport=6000,
        )  # fmt: skip
        stats = {name: 100 + i for i, name in enumerate(COUNTER_NAMES)}
        drops = {name: 10 + i for i, name in enumerate(DROP_REASONS)}
        offload = OffloadState(False, True, True, "udp_csum off", "udp_csum on")
        control = {"hellos_sent": 0, "hellos_received": 5, "acks_sent": 5, "acks_received": 0,
                   "control_ignored": 1}  # fmt: skip
        self.tunnels = [TunnelState(t, stats, drops, False, offload, control)]
        s = SessionConfig(1000, 3000, 4000, seq=SeqMode.SEND, cookie=bytes.fromhex("deadbeef"))
        sstats = {name: 2**40 + i for i, name in enumerate(COUNTER_NAMES)}
        sdrops = {"frame_too_long": 7, "some_newer_reason": 3}
        live = LivenessState("down", 7.25, 7.5, 3, None, control)
        self.sessions = [
            SessionState(
                s, "l2tpeth0", 2000, 1488, True, False, sstats, sdrops, {"mss_clamped": 42}, live
            ),
        ]
        sa_info = {"tunnel_id": 1000, "dir": "in", "spi": 0x4000, "aead": "rfc4106(gcm(aes))",
                   "replay_window": 64, "esn": False, "key": "SECRET-KEY-BYTES"}  # fmt: skip
        sa_stats = {name: 500 + i for i, name in enumerate(ESP_COUNTER_NAMES)}
        sa_drops = {name: 20 + i for i, name in enumerate(ESP_DROP_REASONS)}
        self.sas = [SaState(sa_info, sa_stats, sa_drops)]
        self.reads = 0

    def show_tunnels(self, tunnel_id: int | None = None) -> list[TunnelState]:
        self.reads += 1
        return self.tunnels

    def show_sessions(
        self, tunnel_id: int | None = None, session_id: int | None = None
    ) -> list[SessionState]:
        return self.sessions

    def show_sas(self, tunnel_id: int | None = None) -> list[SaState]:
        return self.sas

    def ping(self) -> Pong:
        return Pong("9.9.9", 1)


def scrape(collector: StateCollector) -> dict[str, Metric]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families: dict[str, Metric], sample: str, **labels: str) -> float:
    family = families[re.sub(r"_total$", "", sample)]
    found = [s.value for s in family.samples if s.name == sample and s.labels == labels]
    assert len(found) == 1, (sample, labels, family.samples)
    return found[0]


@pytest.fixture
def families() -> dict[str, Metric]:
    return scrape(StateCollector(FakeDaemon(), FACTS, direct))  # type: ignore[arg-type]


def test_names_and_labels_follow_prometheus_conventions(families: dict[str, Metric]) -> None:
    assert families
    for family in families.values():
        assert re.fullmatch(r"l2tpv3_(daemon|tunnel|session|sa)_[a-z0-9_]+", family.name)
        for sample in family.samples:
            if family.type == "counter":
                assert sample.name == family.name + "_total"
            for label in sample.labels:
                assert re.fullmatch(r"[a-z][a-z0-9_]*", label), label
    session_labels = {"tunnel_id": "1000", "session_id": "3000", "ifname": "l2tpeth0"}
    for sample in families["l2tpv3_session_rx_packets"].samples:
        assert sample.labels == session_labels


def test_every_counter_and_drop_reason_is_exported(families: dict[str, Metric]) -> None:
    d = FakeDaemon()
    t, s = d.tunnels[0], d.sessions[0]
    sl = {"tunnel_id": "1000", "session_id": "3000", "ifname": "l2tpeth0"}
    for name in COUNTER_NAMES:
        assert value(families, f"l2tpv3_tunnel_{name}_total", tunnel_id="1000") == t.stats[name]
        # 2**40 + i: exact in a float, and in the exposition.
        assert value(families, f"l2tpv3_session_{name}_total", **sl) == s.stats[name]
    for reason in DROP_REASONS:
        got = value(families, "l2tpv3_tunnel_drops_total", tunnel_id="1000", reason=reason)
        assert got == t.drops[reason]
    # Every known session reason, at 0 until it counts, and any newer one the record has.
    for reason in (*SESSION_DROP_REASONS, "some_newer_reason"):
        got = value(families, "l2tpv3_session_drops_total", **sl, reason=reason)
        assert got == (s.drops or {}).get(reason, 0)


def test_features_liveness_hellos_and_sas_are_exported(families: dict[str, Metric]) -> None:
    sl = {"tunnel_id": "1000", "session_id": "3000", "ifname": "l2tpeth0"}
    assert value(families, "l2tpv3_session_mss_clamped_total", **sl) == 42
    assert value(families, "l2tpv3_session_liveness", **sl, state="down") == 1
    assert value(families, "l2tpv3_session_liveness", **sl, state="up") == 0
    assert value(families, "l2tpv3_session_liveness_transitions_total", **sl) == 3
    assert value(families, "l2tpv3_session_last_rx_seconds", **sl) == 7.25
    assert value(families, "l2tpv3_tunnel_hellos_received_total", tunnel_id="1000") == 5
    assert value(families, "l2tpv3_tunnel_acks_sent_total", tunnel_id="1000") == 5
    assert value(families, "l2tpv3_tunnel_control_ignored_total", tunnel_id="1000") == 1
    sa = {"tunnel_id": "1000", "dir": "in", "spi": "0x00004000"}
    d = FakeDaemon()
    for name in ESP_COUNTER_NAMES:
        assert value(families, f"l2tpv3_sa_{name}_total", **sa) == d.sas[0].stats[name]
    for reason in ESP_DROP_REASONS:
        got = value(families, "l2tpv3_sa_drops_total", **sa, reason=reason)
        assert got == d.sas[0].drops[reason]
    info = families["l2tpv3_sa_info"].samples[0].labels
    assert info["algorithm"] == "rfc4106(gcm(aes))" and info["replay_window"] == "64"
    # An SA's keys are never exported, whatever its record carries.
    assert "SECRET" not in str(families)


def test_daemon_facts_offload_and_state(families: dict[str, Metric]) -> None:
    info = families["l2tpv3_daemon_info"].samples[0]
    assert info.name == "l2tpv3_daemon_info"
    assert info.labels == {"version": "9.9.9", "implementation": "cython"}
    assert value(families, "l2tpv3_daemon_start_time_seconds") == FACTS.start_time
    assert value(families, "l2tpv3_daemon_tunnels") == 1
    assert value(families, "l2tpv3_daemon_sessions") == 1
    for offload, on in (("udp_gso", 0), ("udp_gro", 1), ("tap_tso", 1)):
        assert value(families, "l2tpv3_tunnel_offload", tunnel_id="1000", offload=offload) == on
    tinfo = families["l2tpv3_tunnel_info"].samples[0]
    assert tinfo.labels["offload_limited_by"] == "udp_csum off"
    assert tinfo.labels["encap"] == "udp"
    sl = {"tunnel_id": "1000", "session_id": "3000", "ifname": "l2tpeth0"}
    assert value(families, "l2tpv3_session_mtu", **sl) == 1488
    assert value(families, "l2tpv3_session_sequencing", **sl, direction="send") == 1
    assert value(families, "l2tpv3_session_sequencing", **sl, direction="recv") == 0
    # The cookie's value is not exported, only its length.
    sinfo = families["l2tpv3_session_info"].samples[0]
    assert sinfo.labels["cookie_length"] == "4"
    assert "deadbeef" not in str(families).lower()


def test_a_new_record_extends_the_table() -> None:
    """What the ESP branch does: one more Record, and its counters appear."""

    def sa_rows(scrape: Scrape) -> Iterator[Row]:
        for t in scrape.tunnels:
            yield Row(
                labels=(str(t.config.tunnel_id), "0x1000", "out"),
                counters={"packets": 5},
                drops={"replay": 1},
                labelled={"state": ("state", {"mature": 1.0, "dying": 0.0})},
            )

    sa = Record("sa", "per security association", ("tunnel_id", "spi", "direction"),
                sa_rows, ("auth_failed", "replay"))  # fmt: skip
    collector = StateCollector(FakeDaemon(), FACTS, direct, (*RECORDS, sa))  # type: ignore[arg-type]
    families = scrape(collector)
    labels = {"tunnel_id": "1000", "spi": "0x1000", "direction": "out"}
    assert value(families, "l2tpv3_sa_packets_total", **labels) == 5
    assert value(families, "l2tpv3_sa_drops_total", **labels, reason="replay") == 1
    assert value(families, "l2tpv3_sa_drops_total", **labels, reason="auth_failed") == 0
    assert value(families, "l2tpv3_sa_state", **labels, state="mature") == 1
    # The tunnels were read once for the three records that use them.
    assert "l2tpv3_tunnel_rx_packets" in families


def test_state_is_read_once_per_scrape() -> None:
    d = FakeDaemon()
    scrape(StateCollector(d, FACTS, direct))  # type: ignore[arg-type]
    assert d.reads == 1


@pytest.mark.parametrize(
    ("text", "endpoint"),
    [
        (":9100", Endpoint("127.0.0.1", 9100)),
        ("0.0.0.0:9100", Endpoint("0.0.0.0", 9100)),
        ("[::1]:80", Endpoint("::1", 80)),
        ("localhost:65535", Endpoint("localhost", 65535)),
    ],
)
def test_endpoint_syntax(text: str, endpoint: Endpoint) -> None:
    assert parse_endpoint(text) == endpoint


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("9100", "expected ADDR:PORT"),
        ("::1:9100", "brackets"),
        ("[nope]:9100", "not an IPv6 address"),
        (":0", "1..65535"),
        (":65536", "1..65535"),
        ("127.0.0.1:http", "1..65535"),
        ("127.0.0.1:", "1..65535"),
    ],
)
def test_bad_endpoint_says_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_endpoint(text)


def test_endpoint_prints_as_typed() -> None:
    assert str(Endpoint("::1", 9100)) == "[::1]:9100"
    assert str(Endpoint("127.0.0.1", 9100)) == "127.0.0.1:9100"


def get(server: MetricsServer, path: str = "/metrics") -> str:
    host, port = server.address
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as resp:
        assert resp.status == 200
        return str(resp.read().decode())


def test_served_over_http_from_the_event_loop(caplog: pytest.LogCaptureFixture) -> None:
    """The scrape runs on another thread; the snapshot is taken on the loop's thread."""
    caplog.set_level(logging.INFO, "l2tpv3d")
    d = FakeDaemon()
    loop = asyncio.new_event_loop()
    seen: list[threading.Thread] = []
    real = d.show_tunnels

    def show_tunnels(tunnel_id: int | None = None) -> list[TunnelState]:
        seen.append(threading.current_thread())
        return real(tunnel_id)

    d.show_tunnels = show_tunnels  # type: ignore[method-assign]
    server = MetricsServer.bind(Endpoint("127.0.0.1", 0))
    try:
        server.start(StateCollector(d, FACTS, on_loop(loop)))  # type: ignore[arg-type]
        text = loop.run_until_complete(asyncio.to_thread(get, server))
    finally:
        server.close()
        loop.close()
    assert seen == [threading.main_thread()]
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert value(families, "l2tpv3_tunnel_rx_packets_total", tunnel_id="1000") > 0
    # The process's own metrics come along.
    assert "process_resident_memory_bytes" in text
    assert "not a loopback address" not in caplog.text
    assert "metrics on http://127.0.0.1:" in caplog.text


def test_a_loop_that_does_not_answer_fails_the_scrape_only(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    loop = asyncio.new_event_loop()  # never run: the snapshot cannot be taken
    server = MetricsServer.bind(Endpoint("127.0.0.1", 0))
    try:
        server.start(StateCollector(FakeDaemon(), FACTS, on_loop(loop, timeout=0.2)))  # type: ignore[arg-type]
        host, port = server.address
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10)
        assert exc.value.code == 503
        assert exc.value.read() == (
            b"l2tpv3d: metrics unavailable: l2tpv3d's event loop did not answer the scrape\n"
        )
        exc.value.close()
    finally:
        server.close()
        loop.close()
    assert "metrics: scrape failed: l2tpv3d's event loop did not answer" in caplog.text
    assert "Traceback" not in capfd.readouterr().err


def test_connections_beyond_the_limit_are_closed_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stalled clients cannot pile up threads: past MAX_CONCURRENT a connection is
    closed at once (not served after the stalled ones time out)."""
    from l2tpv3.daemon import metrics

    monkeypatch.setattr(metrics._Handler, "timeout", 60)
    server = MetricsServer.bind(Endpoint("127.0.0.1", 0))
    stalled = []
    try:
        server.start(StateCollector(FakeDaemon(), FACTS, direct))  # type: ignore[arg-type]
        for _ in range(metrics.MAX_CONCURRENT):
            stalled.append(socket.create_connection(server.address, timeout=10))
        time.sleep(0.2)
        with socket.create_connection(server.address, timeout=10) as extra:
            assert extra.recv(1) == b""  # closed, where it would wait 60 s if served
    finally:
        for conn in stalled:
            conn.close()
        server.close()


def test_a_stalled_client_is_closed_and_scrapes_go_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from l2tpv3.daemon import metrics

    monkeypatch.setattr(metrics._Handler, "timeout", 0.5)
    server = MetricsServer.bind(Endpoint("127.0.0.1", 0))
    try:
        server.start(StateCollector(FakeDaemon(), FACTS, direct))  # type: ignore[arg-type]
        with socket.create_connection(server.address, timeout=10) as conn:
            conn.sendall(b"GET /metrics HTTP/1.1\r\n")  # and never the rest
            assert conn.recv(1) == b""  # closed by the server, before our 10 s
        assert "l2tpv3_tunnel_rx_packets_total" in get(server)
    finally:
        server.close()


def test_non_loopback_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "l2tpv3d")
    server = MetricsServer.bind(Endpoint("0.0.0.0", 0))
    server.close()
    assert caplog.text.count("not a loopback address") == 1
    caplog.clear()
    MetricsServer.bind(Endpoint("::1", 0)).close()
    assert "not a loopback address" not in caplog.text


def test_address_in_use_is_one_line() -> None:
    first = MetricsServer.bind(Endpoint("127.0.0.1", 0))
    try:
        port = first.address[1]
        with pytest.raises(L2TPError, match=rf"^--metrics 127\.0\.0\.1:{port}: cannot listen: "):
            MetricsServer.bind(Endpoint("127.0.0.1", port))
    finally:
        first.close()


def test_unknown_host_is_one_line() -> None:
    with pytest.raises(L2TPError, match=r"^--metrics no-such-host\.invalid:9100: "):
        MetricsServer.bind(Endpoint("no-such-host.invalid", 9100))
