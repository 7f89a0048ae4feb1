"""``l2tpv3d``: the entry point (arguments, the event loop, signals, the control socket)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from l2tpv3 import __version__
from l2tpv3.config.file import load_config
from l2tpv3.constants import CONTROL_SOCKET_ENV, DEFAULT_CONTROL_SOCKET, MAX_BATCH
from l2tpv3.control.server import ControlServer, group_id, handler, serve
from l2tpv3.daemon.core import Daemon
from l2tpv3.errors import L2TPError
from l2tpv3.io.api import DEFAULT_BATCH, Options
from l2tpv3.io.datapath import Implementation, choose
from l2tpv3.io.sockets import DEFAULT_SOCKET_BUFFER

__all__ = ["main", "parse_batch", "parse_size", "run"]

log = logging.getLogger("l2tpv3d")


async def run(
    socket_path: str,
    config_path: str | None,
    options: Options | None = None,
    impl: Implementation | None = None,
    *,
    group: str | None = None,
) -> int:
    """Run until SIGTERM or SIGINT: then every session and tunnel is deleted, client
    connections are closed and the control socket (only the one this daemon bound) is
    removed. SIGHUP is logged and ignored: reloading is not implemented (restart the
    daemon to apply a changed ``--config``). ``group`` may use the control socket too."""
    options = options or Options()
    impl = impl or choose()
    loop = asyncio.get_running_loop()
    daemon = Daemon(loop, impl, options)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _sighup)
    server: ControlServer | None = None
    try:
        gid = group_id(group) if group is not None else None
        if config_path is not None:
            tunnels, sessions = load_config(config_path)
            for tcfg in tunnels:
                daemon.add_tunnel(tcfg)
            for scfg in sessions:
                daemon.add_session(scfg)
        server = await serve(socket_path, handler(daemon), group=gid)
        log.info(
            "listening on %s (version %s, pid %d, %s data path)",
            socket_path,
            __version__,
            os.getpid(),
            impl.name,
        )
        await stop.wait()
        log.info("stopping")
        return 0
    except L2TPError as exc:
        print(f"l2tpv3d: {exc}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            await server.aclose()
        daemon.close()


def _sighup() -> None:
    log.info("SIGHUP ignored: l2tpv3d does not reload (restart it to apply a changed --config)")


def main(argv: list[str] | None = None) -> int:
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
    parser.add_argument("--config", help="TOML file of tunnels and sessions to bring up")
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
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"l2tpv3d {__version__}")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="l2tpv3d: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
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
        return int(runner(run(args.socket, args.config, options, group=args.group)))
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
