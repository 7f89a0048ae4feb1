"""``l2tpv3d``: the entry point (arguments, the event loop, signals, the control socket)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time

from l2tpv3 import __version__
from l2tpv3.config import Encap, SessionConfig, TunnelConfig
from l2tpv3.config.file import load_config, load_sas
from l2tpv3.constants import CONTROL_SOCKET_ENV, DEFAULT_CONTROL_SOCKET, MAX_BATCH
from l2tpv3.control.protocol import CAPTURE_OP
from l2tpv3.control.server import ControlServer, group_id, handler, serve
from l2tpv3.daemon.capture import capture_streamer
from l2tpv3.daemon.core import Daemon
from l2tpv3.daemon.metrics import Endpoint, Facts, MetricsServer, StateCollector, on_loop
from l2tpv3.daemon.metrics import parse_endpoint as parse_metrics
from l2tpv3.daemon.notify import Notifier
from l2tpv3.daemon.privileges import PrivilegeError, User, drop, lookup_user, needed_caps
from l2tpv3.errors import L2TPError, StateError
from l2tpv3.io.api import DEFAULT_BATCH, Options
from l2tpv3.io.datapath import Implementation, choose
from l2tpv3.io.ivstate import DEFAULT_STATE_DIR
from l2tpv3.io.sockets import DEFAULT_SOCKET_BUFFER

__all__ = ["check_configured", "main", "parse_batch", "parse_size", "run", "start_configured"]

log = logging.getLogger("l2tpv3d")

TUN_DEVICE = "/dev/net/tun"


async def run(
    socket_path: str,
    config_path: str | None,
    options: Options | None = None,
    impl: Implementation | None = None,
    *,
    group: str | None = None,
    drop_privileges: bool = False,
    user: User | None = None,
    notifier: Notifier | None = None,
    state_dir: str = DEFAULT_STATE_DIR,
    metrics: Endpoint | None = None,
) -> int:
    """Run until SIGTERM or SIGINT: then every session and tunnel is deleted, client
    connections are closed and the control socket (only the one this daemon bound) is
    removed. SIGHUP is logged and ignored: reloading is not implemented (restart the
    daemon to apply a changed ``--config``). ``group`` may use the control socket too.

    Start-up order: the config file is read and the control socket bound with the
    privileges the daemon started with; then, if ``drop_privileges`` (``l2tpv3d`` always
    asks for it), every capability but those of :func:`privileges.needed_caps` goes
    and the daemon becomes ``user`` if given (docs/operations.md); only then are the
    config's tunnels and sessions created, so no data path thread predates the drop.
    ``notifier`` (sd_notify) hears READY=1 once all that is done, WATCHDOG=1 while the
    loop runs and STOPPING=1 at the end.

    ``metrics``: serve Prometheus metrics there (l2tpv3.daemon.metrics); bound with the
    control socket, before the drop, and served from a thread started after it."""
    started = time.time()
    options = options or Options()
    impl = impl or choose()
    notifier = notifier or Notifier({})
    loop = asyncio.get_running_loop()
    daemon = Daemon(loop, impl, options, state_dir=state_dir)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _sighup)
    server: ControlServer | None = None
    watchdog: asyncio.Task[None] | None = None
    socket_stays = False
    metrics_server: MetricsServer | None = None
    try:
        gid = group_id(group) if group is not None else None
        tunnels, sessions = load_config(config_path) if config_path is not None else ([], [])
        check_configured(tunnels, sessions, config_path or "")
        sas = load_sas(config_path) if config_path is not None else []
        server = await serve(
            socket_path,
            handler(daemon),
            group=gid,
            streams={CAPTURE_OP: capture_streamer(daemon)},
        )
        if metrics is not None:
            metrics_server = MetricsServer.bind(metrics)
        if drop_privileges:
            if user is not None:
                # The daemon's user owns its socket (it may use it, and may remove it
                # from a directory with the sticky bit).
                try:
                    os.chown(socket_path, user.uid, -1)
                except OSError as exc:
                    raise PrivilegeError(f"chown {socket_path}: {exc.strerror}") from None
            ports = [t.udp_sport for t in tunnels if t.encap is Encap.UDP and t.udp_sport]
            dropped = drop(needed_caps(ports), user)
            log.info("privileges dropped: %s", dropped.describe())
            if not os.access(TUN_DEVICE, os.R_OK | os.W_OK):
                log.warning(
                    "uid %d cannot open %s: sessions cannot create TAP devices (it is mode "
                    "0666 where udev manages /dev; see docs/operations.md)",
                    os.geteuid(),
                    TUN_DEVICE,
                )
            socket_stays = not os.access(os.path.dirname(socket_path) or ".", os.W_OK | os.X_OK)
            if socket_stays:
                log.info(
                    "the control socket %s will stay behind at exit: uid %d cannot write "
                    "its directory (the next start removes it as stale; use a directory "
                    "the daemon's user owns, e.g. systemd's RuntimeDirectory=l2tpv3)",
                    socket_path,
                    os.geteuid(),
                )
        start_configured(daemon, tunnels, sessions)
        for sacfg in sas:
            try:
                daemon.add_sa(sacfg)
            except L2TPError as exc:
                log.error(
                    "SA dir %s spi 0x%08x of tunnel %d not added: %s",
                    sacfg.dir.value,
                    sacfg.spi,
                    sacfg.tunnel_id,
                    exc,
                )
        log.info(
            "listening on %s (version %s, pid %d, %s data path)",
            socket_path,
            __version__,
            os.getpid(),
            impl.name,
        )
        if impl.esp_fallback:
            log.info("encrypted tunnels (ESP SAs) use the Python data path: %s", impl.esp_fallback)
        if metrics_server is not None:
            facts = Facts(__version__, impl.name, started)
            metrics_server.start(StateCollector(daemon, facts, on_loop(loop)))
        notifier.ready(f"listening on {socket_path}")
        watchdog = asyncio.create_task(notifier.watchdog())
        await stop.wait()
        log.info("stopping")
        return 0
    except L2TPError as exc:
        print(f"l2tpv3d: {exc}", file=sys.stderr)
        return 2
    except PrivilegeError as exc:
        print(f"l2tpv3d: cannot drop privileges: {exc}", file=sys.stderr)
        return 2
    finally:
        notifier.stopping()
        if watchdog is not None:
            watchdog.cancel()
        if metrics_server is not None:
            metrics_server.close()
        if server is not None:
            await server.aclose()
            if socket_stays:
                log.info("left the control socket %s behind (see above)", socket_path)
        daemon.close()
        notifier.close()


def check_configured(
    tunnels: list[TunnelConfig], sessions: list[SessionConfig], where: str
) -> None:
    """What the config file says must hold together (StateError, exit 2): unique tunnel
    IDs, unique session IDs per tunnel, and every session in one of the file's tunnels."""
    tids: set[int] = set()
    for t in tunnels:
        if t.tunnel_id in tids:
            raise StateError(f"{where}: tunnel {t.tunnel_id} is configured twice")
        tids.add(t.tunnel_id)
    sids: set[tuple[int, int]] = set()
    for s in sessions:
        if s.tunnel_id not in tids:
            raise StateError(
                f"{where}: session {s.session_id}: tunnel {s.tunnel_id} does not exist"
            )
        if (s.tunnel_id, s.session_id) in sids:
            raise StateError(
                f"{where}: session {s.session_id} already exists in tunnel {s.tunnel_id}"
            )
        sids.add((s.tunnel_id, s.session_id))


def start_configured(
    daemon: Daemon, tunnels: list[TunnelConfig], sessions: list[SessionConfig]
) -> None:
    """Create the config file's tunnels and sessions. One that cannot be brought up (its
    port is taken, a TAP cannot be created, ...) is logged in one line and skipped, with
    the sessions of a skipped tunnel: the others start (docs/usage.md)."""
    failed: dict[int, str] = {}
    for tcfg in tunnels:
        try:
            daemon.add_tunnel(tcfg)
        except L2TPError as exc:
            failed[tcfg.tunnel_id] = str(exc)
    for tid, reason in failed.items():
        skipped = [str(s.session_id) for s in sessions if s.tunnel_id == tid]
        also = f" (nor its session{'s' * (len(skipped) > 1)} {', '.join(skipped)})"
        log.error("tunnel %d not started%s: %s", tid, also if skipped else "", reason)
    for scfg in sessions:
        if scfg.tunnel_id in failed:
            continue
        try:
            daemon.add_session(scfg)
        except L2TPError as exc:
            log.error(
                "session %d in tunnel %d not started: %s", scfg.session_id, scfg.tunnel_id, exc
            )


def _sighup() -> None:
    log.info("SIGHUP ignored: l2tpv3d does not reload (restart it to apply a changed --config)")


def build_parser() -> argparse.ArgumentParser:
    """``l2tpv3d``'s options: what ``--help`` prints, and the one source of the manual
    page l2tpv3d(8) and of its bash completion (l2tpv3.tools.manpage, .completion)."""
    parser = argparse.ArgumentParser(
        prog="l2tpv3d", description="Userspace L2TPv3 Ethernet pseudowire daemon."
    )
    parser.add_argument(
        "-S",
        "--socket",
        default=os.environ.get(CONTROL_SOCKET_ENV, DEFAULT_CONTROL_SOCKET),
        help=f"control socket (default ${CONTROL_SOCKET_ENV} or {DEFAULT_CONTROL_SOCKET})",
    )
    parser.add_argument(
        "--group",
        metavar="NAME",
        help="members of this group may use the control socket too (mode 0660)",
    )
    parser.add_argument(
        "--user",
        metavar="NAME",
        help=(
            "run as this user after start-up (with CAP_NET_ADMIN and CAP_NET_RAW only; "
            "see docs/operations.md)"
        ),
    )
    parser.add_argument(
        "--config", metavar="FILE", help="TOML file of tunnels and sessions to bring up"
    )
    parser.add_argument(
        "--rcvbuf",
        type=parse_size,
        default=DEFAULT_SOCKET_BUFFER,
        metavar="BYTES",
        help="tunnel socket receive buffer (default 4 MiB; suffixes K, M)",
    )
    parser.add_argument(
        "--sndbuf",
        type=parse_size,
        default=DEFAULT_SOCKET_BUFFER,
        metavar="BYTES",
        help="tunnel socket send buffer (default 4 MiB; suffixes K, M)",
    )
    parser.add_argument(
        "--batch",
        type=parse_batch,
        default=DEFAULT_BATCH,
        metavar="N",
        help=(
            f"datagrams or frames per system call and wakeup, 1..{MAX_BATCH} "
            f"(default {DEFAULT_BATCH})"
        ),
    )
    parser.add_argument(
        "--no-offload",
        dest="offload",
        action="store_false",
        help="Cython path: no TAP TSO/checksum offloads, no UDP GSO/GRO",
    )
    parser.add_argument(
        "--state-dir",
        default=DEFAULT_STATE_DIR,
        metavar="DIR",
        help=f"ESP IV reservations (private; default {DEFAULT_STATE_DIR}, docs/security.md)",
    )
    parser.add_argument(
        "--metrics",
        metavar="ADDR:PORT",
        help=(
            "serve Prometheus metrics at http://ADDR:PORT/metrics (:PORT means 127.0.0.1; "
            "[ADDR]:PORT for IPv6)"
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"l2tpv3d {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="l2tpv3d: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        user = lookup_user(args.user) if args.user is not None else None
    except PrivilegeError as exc:
        parser.error(str(exc))
    try:
        metrics = parse_metrics(args.metrics) if args.metrics is not None else None
    except ValueError as exc:
        print(f'l2tpv3d: --metrics "{args.metrics}": {exc}', file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        options = Options(
            rcvbuf=args.rcvbuf, sndbuf=args.sndbuf, batch=args.batch, offload=args.offload
        )
        coro = run(
            args.socket,
            args.config,
            options,
            group=args.group,
            drop_privileges=True,
            user=user,
            notifier=Notifier(),
            state_dir=args.state_dir,
            metrics=metrics,
        )
        return int(runner(coro))
    except KeyboardInterrupt:
        return 0


def parse_size(text: str) -> int:
    """``--rcvbuf``/``--sndbuf``: bytes, with suffix K or M; 4K..1G."""
    units = {"K": 1024, "M": 1024 * 1024}
    mult = units.get(text[-1:].upper(), 1)
    digits = text[:-1] if mult > 1 else text
    if not digits.isdigit() or not 4096 <= int(digits) * mult <= 1 << 30:
        raise argparse.ArgumentTypeError(f'invalid size "{text}": 4K..1G bytes')
    return int(digits) * mult


def parse_batch(text: str) -> int:
    """``--batch``: 1..MAX_BATCH."""
    if not text.isdigit() or not 1 <= int(text) <= MAX_BATCH:
        raise argparse.ArgumentTypeError(f'invalid batch "{text}": 1..{MAX_BATCH}')
    return int(text)


if __name__ == "__main__":
    sys.exit(main())
