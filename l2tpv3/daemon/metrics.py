"""``l2tpv3d --metrics ADDR:PORT``: the daemon's state in the Prometheus exposition format.

Nothing is counted twice: at each scrape :class:`StateCollector` asks the daemon, on its
event loop, for the same records ``l2tpv3 show -s -j`` reads (``show_tunnels``,
``show_sessions``), and turns them into metric families with the official
``prometheus_client``. The data path pays nothing per packet for it.

What is exported is one table, :data:`RECORDS`: each entry is one kind of state record
(the daemon, its tunnels, its sessions) with its labels and a function giving its rows.
A row carries counters (``l2tpv3_<record>_<name>_total``), drops by reason
(``l2tpv3_<record>_drops_total{reason=...}``), gauges (``l2tpv3_<record>_<name>``),
labelled gauges (``l2tpv3_tunnel_offload{offload="udp_gso"}``) and info labels
(``l2tpv3_<record>_info``). A new kind of record (ESP security associations, liveness)
adds one :class:`Record` to the table; a new counter or drop reason in a record shows up
by itself.

The HTTP side is ``prometheus_client``'s WSGI application (content negotiation,
OpenMetrics, gzip) on the standard library's threaded server, bound by
:meth:`MetricsServer.bind` before the daemon drops its privileges (a port below 1024
needs CAP_NET_BIND_SERVICE) and served from a thread started after the drop, so the
thread holds no capability. A bare ``:PORT`` binds to 127.0.0.1; any other address is
allowed, with one warning in the log when it is not a loopback address.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from l2tpv3.control.protocol import Operations, SaState, SessionState, TunnelState
from l2tpv3.errors import L2TPError
from l2tpv3.proto.counters import (
    DROP_REASONS,
    ESP_DROP_REASONS,
    SESSION_DROP_REASONS,
    TRUNK_DROP_REASONS,
)

__all__ = [
    "COUNTER_HELP",
    "RECORDS",
    "Endpoint",
    "Facts",
    "MetricsServer",
    "Record",
    "Row",
    "Scrape",
    "StateCollector",
    "direct",
    "on_loop",
    "parse_endpoint",
]

log = logging.getLogger("l2tpv3d")

NAMESPACE: Final = "l2tpv3"
# A scrape waits this long for the event loop to take its snapshot.
SNAPSHOT_TIMEOUT: Final = 5.0
# Connections served at once (a thread each); more are closed at once (a scraper
# retries), so stalled clients cannot pile up threads.
MAX_CONCURRENT: Final = 16
# A connection that stalls this long (no complete request, or not reading the answer)
# is closed.
REQUEST_TIMEOUT: Final = 5.0

# The kernel's counters (l2tpv3.proto.counters), as Prometheus HELP text.
COUNTER_HELP: Final[Mapping[str, str]] = {
    "tx_packets": "Data packets sent",
    "tx_bytes": "Bytes sent, L2TP header included, IP and UDP headers not",
    "tx_errors": "Data packets that could not be sent",
    "rx_packets": "Data packets received and accepted",
    "rx_bytes": "Bytes received, L2TP header included, IP and UDP headers not",
    "rx_seq_discards": "Packets dropped by receive sequencing (too old or duplicate)",
    "rx_oos_packets": "Packets received out of sequence",
    "rx_errors": "Received packets in error",
    "rx_cookie_discards": "Packets dropped for a wrong cookie",
    "rx_invalid": "Datagrams dropped as invalid before reaching a session",
    # The daemon's own features (proto.counters.SESSION_FEATURE_COUNTERS).
    "mss_clamped": "TCP SYNs whose MSS option was lowered (mss_clamp)",
    # Liveness (proto/liveness.py).
    "liveness_transitions": "Liveness changes between up and down",
    "hellos_sent": "HELLO control messages sent",
    "hellos_received": "HELLO control messages received",
    "acks_sent": "ZLB ACKs sent (answers to HELLOs)",
    "acks_received": "ZLB ACKs received",
    "control_ignored": "Control messages received and not handled",
    # ESP (proto/esp.py): per security association.
}


@dataclass(frozen=True, slots=True)
class Facts:
    """What the daemon is, for ``l2tpv3_daemon_*``."""

    version: str
    implementation: str
    start_time: float  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class Row:
    """One record's values; ``labels`` in the order of its :attr:`Record.labels`."""

    labels: tuple[str, ...]
    counters: Mapping[str, int] = field(default_factory=dict)
    drops: Mapping[str, int] = field(default_factory=dict)
    gauges: Mapping[str, float] = field(default_factory=dict)
    # metric name -> (label name, {label value: value}): a set of 0/1 states, say.
    labelled: Mapping[str, tuple[str, Mapping[str, float]]] = field(default_factory=dict)
    info: Mapping[str, str] = field(default_factory=dict)


class Scrape:
    """What a record's rows are read from, on the event loop: the daemon's operations
    (the control protocol's op table) and its facts. The tunnel and session records are
    read once per scrape, however many tables use them."""

    def __init__(self, ops: Operations, facts: Facts) -> None:
        self.ops = ops
        self.facts = facts

    @cached_property
    def tunnels(self) -> list[TunnelState]:
        return self.ops.show_tunnels()

    @cached_property
    def sessions(self) -> list[SessionState]:
        return self.ops.show_sessions()

    @cached_property
    def sas(self) -> list[SaState]:
        return self.ops.show_sas()


@dataclass(frozen=True, slots=True)
class Record:
    """One kind of state record: metric names start with ``l2tpv3_<name>_``."""

    name: str
    what: str  # "per tunnel": how the HELP texts name the series of this record
    labels: tuple[str, ...]
    rows: Callable[[Scrape], Iterable[Row]]
    known_drops: tuple[str, ...] = ()  # exported at 0 before they first count


def _daemon_rows(scrape: Scrape) -> Iterator[Row]:
    f = scrape.facts
    yield Row(
        labels=(),
        gauges={
            "start_time_seconds": f.start_time,
            "tunnels": len(scrape.tunnels),
            "sessions": len(scrape.sessions),
        },
        info={"version": f.version, "implementation": f.implementation},
    )


def _flag(on: bool) -> float:
    return 1.0 if on else 0.0


def _tunnel_rows(scrape: Scrape) -> Iterator[Row]:
    for t in scrape.tunnels:
        cfg = t.config
        labelled: dict[str, tuple[str, Mapping[str, float]]] = {}
        info = {
            "peer_tunnel_id": str(cfg.peer_tunnel_id),
            "encap": cfg.encap.value,
            "local": str(cfg.local),
            "remote": str(cfg.remote),
        }
        if t.offload is not None:
            o = t.offload
            labelled["offload"] = (
                "offload",
                {"udp_gso": _flag(o.udp_gso), "udp_gro": _flag(o.udp_gro),
                 "tap_tso": _flag(o.tap_tso)},
            )  # fmt: skip
            info["offload_limited_by"] = o.limited_by or ""
        yield Row(
            labels=(str(cfg.tunnel_id),),
            counters={**t.stats, **(t.control or {})},
            drops=t.drops,
            gauges={"waiting_for_address": _flag(t.waiting)},
            labelled=labelled,
            info=info,
        )


def _session_rows(scrape: Scrape) -> Iterator[Row]:
    for s in scrape.sessions:
        cfg = s.config
        gauges: dict[str, float] = {}
        if s.mtu is not None:
            gauges["mtu"] = s.mtu
        seq_send, seq_recv = _flag(s.send_seq), _flag(s.recv_seq)
        counters = {**s.stats, **(s.features or {})}
        labelled: dict[str, tuple[str, Mapping[str, float]]] = {
            "sequencing": ("direction", {"send": seq_send, "recv": seq_recv})
        }
        live = s.liveness
        if live is not None:
            up = live.state == "up"
            labelled["liveness"] = ("state", {"up": _flag(up), "down": _flag(not up)})
            counters["liveness_transitions"] = live.transitions
            if live.last_rx_ago is not None:
                gauges["last_rx_seconds"] = live.last_rx_ago
        yield Row(
            labels=(str(cfg.tunnel_id), str(cfg.session_id), s.interface),
            counters=counters,
            drops=s.drops or {},
            gauges=gauges,
            labelled=labelled,
            info={
                "peer_session_id": str(cfg.peer_session_id),
                "peer_tunnel_id": str(s.peer_tunnel_id),
                "l2spec_type": cfg.l2spec_type.value,
                "cookie_length": str(len(cfg.cookie)),
            },
        )


def _sa_rows(scrape: Scrape) -> Iterator[Row]:
    for sa in scrape.sas:
        i = sa.info
        alg = str(i.get("aead") or f"{i.get('enc')} {i.get('auth')}")
        yield Row(
            labels=(str(i.get("tunnel_id")), str(i.get("dir")), f"0x{int(str(i.get('spi'))):08x}"),
            counters=sa.stats,
            drops=sa.drops,
            info={
                "algorithm": alg,
                "replay_window": str(i.get("replay_window", 0)),
                "esn": "1" if i.get("esn") else "0",
                "espinudp": "1" if i.get("encap_sport") else "0",
            },
        )


# EXTENSION POINT: one entry per kind of state record (keys never: SaState has none).
RECORDS: Final[tuple[Record, ...]] = (
    Record("daemon", "of l2tpv3d", (), _daemon_rows),
    Record("tunnel", "per tunnel", ("tunnel_id",), _tunnel_rows, DROP_REASONS + TRUNK_DROP_REASONS),
    Record(
        "session",
        "per session",
        ("tunnel_id", "session_id", "ifname"),
        _session_rows,
        SESSION_DROP_REASONS,
    ),
    Record(
        "sa",
        "per ESP security association",
        ("tunnel_id", "dir", "spi"),
        _sa_rows,
        ESP_DROP_REASONS,
    ),
)

_GAUGE_HELP: Final[Mapping[str, str]] = {
    "start_time_seconds": "Start time in seconds since the epoch",
    "tunnels": "Tunnels configured",
    "sessions": "Sessions configured",
    "waiting_for_address": "1 while the local address is not usable yet",
    "mtu": "The interface's MTU",
    "offload": "1 for each offload the data path uses now",
    "sequencing": "1 for each direction that uses sequence numbers",
    "liveness": "1 for the session's liveness state (liveness not off)",
    "last_rx_seconds": "Seconds since the session last received a packet",
}


def _families(record: Record, rows: Sequence[Row]) -> Iterator[Metric]:
    """The metric families of one record's rows (one family per name, every row in it)."""
    prefix = f"{NAMESPACE}_{record.name}"
    labels = list(record.labels)
    counters: dict[str, CounterMetricFamily] = {}
    gauges: dict[str, GaugeMetricFamily] = {}
    drops: CounterMetricFamily | None = None
    info: InfoMetricFamily | None = None
    for row in rows:
        values = list(row.labels)
        for name, value in row.counters.items():
            fam = counters.get(name)
            if fam is None:
                doc = f"{COUNTER_HELP.get(name, name)}, {record.what}"
                fam = counters[name] = CounterMetricFamily(f"{prefix}_{name}", doc, labels=labels)
            fam.add_metric(values, value)
        reasons = dict.fromkeys(record.known_drops, 0) | dict(row.drops)
        if reasons:
            if drops is None:
                doc = f"Packets dropped, by reason, {record.what}"
                drops = CounterMetricFamily(f"{prefix}_drops", doc, labels=[*labels, "reason"])
            for reason, dropped in reasons.items():
                drops.add_metric([*values, reason], dropped)
        for name, level in row.gauges.items():
            gauge = gauges.get(name)
            if gauge is None:
                doc = f"{_GAUGE_HELP.get(name, name)}, {record.what}"
                gauge = gauges[name] = GaugeMetricFamily(f"{prefix}_{name}", doc, labels=labels)
            gauge.add_metric(values, level)
        for name, (label, states) in row.labelled.items():
            gauge = gauges.get(name)
            if gauge is None:
                doc = f"{_GAUGE_HELP.get(name, name)}, {record.what}"
                gauge = gauges[name] = GaugeMetricFamily(
                    f"{prefix}_{name}", doc, labels=[*labels, label]
                )
            for state, on in states.items():
                gauge.add_metric([*values, state], on)
        if row.info:
            if info is None:
                doc = f"What it is, {record.what}, in labels (the value is always 1)"
                info = InfoMetricFamily(prefix, doc, labels=labels)
            info.add_metric(values, dict(row.info))
    yield from counters.values()
    if drops is not None:
        yield drops
    yield from gauges.values()
    if info is not None:
        yield info


Snapshot = list[tuple[Record, list[Row]]]


class StateCollector:
    """The ``prometheus_client`` collector of :data:`RECORDS`.

    ``snapshot`` runs a function where the daemon's state may be read (its event loop)
    and returns its result; the metric families are built in the scraping thread."""

    def __init__(
        self,
        ops: Operations,
        facts: Facts,
        snapshot: Callable[[Callable[[], Snapshot]], Snapshot],
        records: Sequence[Record] = RECORDS,
    ) -> None:
        self._ops = ops
        self._facts = facts
        self._snapshot = snapshot
        self._records = tuple(records)

    def _take(self) -> Snapshot:
        scrape = Scrape(self._ops, self._facts)
        return [(record, list(record.rows(scrape))) for record in self._records]

    def collect(self) -> Iterator[Metric]:
        for record, rows in self._snapshot(self._take):
            yield from _families(record, rows)


def direct(take: Callable[[], Snapshot]) -> Snapshot:
    """A ``snapshot`` for callers already on the thread that owns the state."""
    return take()


def on_loop(
    loop: asyncio.AbstractEventLoop, timeout: float = SNAPSHOT_TIMEOUT
) -> Callable[[Callable[[], Snapshot]], Snapshot]:
    """A ``snapshot`` that runs on ``loop`` (an asyncio loop) and waits for it."""

    def run(take: Callable[[], Snapshot]) -> Snapshot:
        fut: concurrent.futures.Future[Snapshot] = concurrent.futures.Future()

        def call() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(take())
            except BaseException as exc:  # handed to the scraping thread
                fut.set_exception(exc)

        loop.call_soon_threadsafe(call)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError("l2tpv3d's event loop did not answer the scrape") from None

    return run


# -- the address ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """``--metrics``' address as given: ``host`` (an address or a name), ``port``."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


DEFAULT_HOST: Final = "127.0.0.1"


def parse_endpoint(text: str) -> Endpoint:
    """``ADDR:PORT``, ``[IPV6]:PORT`` or ``:PORT`` (127.0.0.1); ValueError with the reason."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError("expected ADDR:PORT, [IPV6]:PORT or :PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f'"{host}" is not an IPv6 address') from None
    elif ":" in host:
        raise ValueError("write an IPv6 address in brackets: [ADDR]:PORT")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f'port "{port}" must be 1..65535')
    return Endpoint(host or DEFAULT_HOST, int(port))


# -- the server -----------------------------------------------------------------------


class _Handler(WSGIRequestHandler):
    """Requests are not logged (a scrape every few seconds would flood the log); a
    client that stalls is dropped after REQUEST_TIMEOUT."""

    timeout = REQUEST_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics: %s: %s", self.address_string(), format % args)


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    # Bound before the privilege drop, served after: see MetricsServer.

    def __init__(self, address: tuple[Any, ...], family: socket.AddressFamily) -> None:
        self.address_family = family
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look the host's name up (getfqdn) at start-up.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])
        self.setup_environ()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("metrics: request from %s failed", client_address, exc_info=True)


def _guarded(app: Any) -> Any:
    """The WSGI application, answering 503 with one line when the state cannot be read
    (wsgiref would print a traceback to stderr)."""

    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        try:
            return app(environ, start_response)
        except Exception as exc:
            log.warning("metrics: scrape failed: %s", exc)
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [f"l2tpv3d: metrics unavailable: {exc}\n".encode()]

    return guarded


class MetricsServer:
    """The HTTP endpoint: :meth:`bind` (before the privilege drop), :meth:`start` (after
    it, with the daemon's state), :meth:`close` (at exit)."""

    def __init__(self, httpd: _Server, endpoint: Endpoint) -> None:
        self._httpd = httpd
        self.endpoint = endpoint
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound address and port."""
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @classmethod
    def bind(cls, endpoint: Endpoint) -> MetricsServer:
        """Bind and listen (L2TPError with a one-line reason if that fails); warn once
        when the address is not a loopback one."""
        try:
            infos = socket.getaddrinfo(
                endpoint.host, endpoint.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except socket.gaierror as exc:
            raise L2TPError(f"--metrics {endpoint}: {exc.strerror}") from None
        family, _, _, _, sockaddr = infos[0]
        try:
            httpd = _Server(sockaddr, family)
        except OSError as exc:
            raise L2TPError(f"--metrics {endpoint}: cannot listen: {exc.strerror}") from None
        server = cls(httpd, endpoint)
        host = server.address[0]
        if not ipaddress.ip_address(host.partition("%")[0]).is_loopback:
            log.warning(
                "metrics are served on %s, not a loopback address: whoever reaches it reads "
                "the tunnels' addresses and counters (bind to 127.0.0.1 or filter it)",
                endpoint,
            )
        return server

    def start(self, collector: StateCollector) -> None:
        """Serve ``collector`` (and the process's own metrics) from a daemon thread."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        ProcessCollector(registry=registry)
        self._httpd.set_app(_guarded(make_wsgi_app(registry)))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
            name="l2tpv3d-metrics", daemon=True,
        )  # fmt: skip
        self._thread.start()
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        log.info("metrics on http://%s:%d/metrics", shown, port)

    def close(self) -> None:
        """Stop serving and close the socket (a scrape in flight is abandoned)."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=2)
            self._thread = None
        self._httpd.server_close()
