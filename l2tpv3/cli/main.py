"""``l2tpv3``: the ``ip l2tp`` command line, talking to ``l2tpv3d`` over its control socket.

``l2tpv3 [ OPTIONS ] add|del|show tunnel|session ...`` takes the words ``ip l2tp``
takes (see :mod:`l2tpv3.grammar`); ``l2tpv3 l2tp add ...`` is accepted too, so a line
written for ``ip`` needs only its first word changed. Global options come first, read
as ip reads its own: ``-j``/``-json``, ``-s``/``-stats``/``-statistics`` (any prefix,
one or two dashes), ``-S SOCKET``/``--socket SOCKET``, ``-h``/``-help``,
``-V``/``-Version``, and ``--`` to end them.

Exit status:

- 0: done; also for help asked for explicitly (``-h``, ``help``, a ``help`` keyword);
- 1: ``l2tpv3d`` could not be reached or sent an answer that makes no sense;
- 2: the command line is wrong (usage printed for no command or an incomplete one, else
  one ``Error:`` line), or ``l2tpv3d`` refused the request.

Errors are one line on stderr, ``Error: <message>``; warnings (``Ignoring option
"offset"``) go to stderr as iproute2 prints them. The usage text goes to stderr, as
iproute2's does, whether asked for or not.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from l2tpv3 import __version__
from l2tpv3.cli import capture, grammar, peerconfig, peerxfrm, sa, show
from l2tpv3.config import SessionConfig, TunnelConfig
from l2tpv3.config import file as configfile
from l2tpv3.constants import CONTROL_SOCKET_ENV, DEFAULT_CONTROL_SOCKET
from l2tpv3.control import client
from l2tpv3.control.protocol import SessionState, ShowSas, ShowSessions, ShowTunnels, TunnelState
from l2tpv3.errors import ConfigError, ControlError, L2TPError, MissingArgument, RefusedError

__all__ = ["SUBCOMMANDS", "USAGE", "Options", "Subcommand", "main", "run_l2tp"]

PROG = "l2tpv3"

USAGE = f"""\
Usage: {PROG} [ OPTIONS ] add tunnel
          remote ADDR local ADDR
          tunnel_id ID peer_tunnel_id ID
          [ encap {{ ip | udp }} ]
          [ udp_sport PORT ] [ udp_dport PORT ]
          [ udp_csum {{ on | off }} ]
          [ udp6_csum_tx {{ on | off }} ]
          [ udp6_csum_rx {{ on | off }} ]
Usage: {PROG} [ OPTIONS ] add session [ name NAME ]
          tunnel_id ID
          session_id ID peer_session_id ID
          [ cookie HEXSTR ] [ peer_cookie HEXSTR ]
          [ seq {{ none | send | recv | both }} ]
          [ l2spec_type L2SPEC ]
          [ reorder_timeout MS ] [ seq_policy POLICY ]
          [ mss_clamp {{ off | auto | MSS }} ]
          [ liveness LIVENESS [ interval S ] [ dead N ] ]
          [ trunk IFNAME vlan VID [ pop ] ]
       {PROG} [ OPTIONS ] del tunnel tunnel_id ID
       {PROG} [ OPTIONS ] del session tunnel_id ID session_id ID
       {PROG} [ OPTIONS ] show tunnel [ tunnel_id ID ]
       {PROG} [ OPTIONS ] show session [ tunnel_id ID ] [ session_id ID ]
       {PROG} [ OPTIONS ] add sa tunnel_id ID dir {{ in | out }} spi SPI
                 {{ aead ALG key KEY | enc ALG key KEY auth ALG auth_key KEY }}
                 [ replay_window N ] [ esn ] [ encap espinudp SPORT DPORT ]
       {PROG} [ OPTIONS ] del sa tunnel_id ID dir {{ in | out }} spi SPI
       {PROG} [ OPTIONS ] show sa [ tunnel_id ID ]
       {PROG} [ OPTIONS ] genkey ALG
       {PROG} [ OPTIONS ] peer-config --for {{ linux | qemu | cisco | tshark }}
                 [ tunnel_id ID ] [ session_id ID ] [ --config FILE ] [ --id NETDEV_ID ]
       {PROG} [ OPTIONS ] explain [ --cookie-len {{ 0 | 4 | 8 }} ] [ --l2spec L2SPEC ]
                 {{ HEX | - | -r FILE }} [ tunnel_id ID ]
       {PROG} [ OPTIONS ] explain --overhead [ SESSION OPTIONS ] [ mtu MTU ] [ esp ALG ]
       {PROG} [ OPTIONS ] capture tunnel_id ID [ session_id ID ] -w FILE [ -c COUNT ]
                 [ --inner ]

Where: OPTIONS := {{ -S SOCKET | -j[son] | -s[tatistics] | -h[elp] | -V[ersion] }}
       SOCKET := l2tpv3d's control socket (default: ${CONTROL_SOCKET_ENV},
                 else {DEFAULT_CONTROL_SOCKET})
       NAME   := STRING
       ADDR   := {{ IP_ADDRESS | any }}
       PORT   := {{ 1..65535 }}
       ID     := {{ 1..4294967295 }}
       HEXSTR := {{ 8 or 16 hex digits (4 / 8 bytes) }}
       L2SPEC := {{ none | default }}
       MS     := {{ 0..3600000 }} (milliseconds; 0: no reordering timeout)
       POLICY := {{ kernel | rfc3931 }} (how received sequence numbers are judged)
       MSS    := {{ 88..65535 }} (TCP SYNs' MSS option lowered to it; auto: MTU - 40 / 60)
       LIVENESS := {{ off | idle | arp IPV4_ADDRESS | hello }} (carrier follows the peer)
       S      := {{ 0.1..3600 }} (seconds between probes; default 2)
       N      := {{ 1..1000 }} (intervals without a sign of life: down; default 3)
       COUNT  := {{ 1.. }} (packets to capture; default: until Ctrl-C)
       IFNAME := a trunk TAP shared by one tunnel's sessions (made on first use)
       VID    := {{ 1..4094 }} (802.1Q / 802.1ad outer tag; pop: untagged on the wire)
"""

EXIT_OK = 0
EXIT_UNREACHABLE = 1
EXIT_USAGE = 2


@dataclass(frozen=True, slots=True)
class Options:
    """The global options, shared by every subcommand."""

    socket: str
    json: bool = False
    stats: bool = False


Subcommand = Callable[[Options, list[str]], int]


class _Exit(Exception):
    """Stop with this status; whatever had to be printed has been."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(status)


def _error(message: object) -> None:
    # One line whatever the message holds, so scripts can read stderr line by line.
    text = " ".join(str(message).split()) or "unknown error"
    print(f"Error: {text}", file=sys.stderr)


def _usage(stream: TextIO | None = None) -> None:
    (stream or sys.stderr).write(USAGE)


def _default_socket() -> str:
    return os.environ.get(CONTROL_SOCKET_ENV) or DEFAULT_CONTROL_SOCKET


def _parse_options(argv: list[str]) -> tuple[Options, list[str]]:
    socket_path = _default_socket()
    as_json = stats = False
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        opt = argv[i]
        i += 1
        if opt == "--":
            break
        if opt in ("-S", "-socket", "--socket"):
            if i >= len(argv) or not argv[i]:
                raise grammar.UsageError(f'option "{opt}" needs a value')
            socket_path = argv[i]
            i += 1
            continue
        if opt.startswith("--socket="):
            socket_path = opt.removeprefix("--socket=")
            if not socket_path:
                raise grammar.UsageError('option "--socket" needs a value')
            continue
        # ip reads "--json" as "-json".
        word = opt[1:] if opt.startswith("--") else opt
        if grammar.matches(word, "-json"):
            as_json = True
        elif grammar.matches(word, "-stats") or grammar.matches(word, "-statistics"):
            stats = True
        elif grammar.matches(word, "-help"):
            _usage()
            raise _Exit(EXIT_OK)
        elif grammar.matches(word, "-Version"):
            print(f"{PROG} {__version__}")
            raise _Exit(EXIT_OK)
        else:
            raise grammar.UsageError(f'option "{opt}" is unknown, try "{PROG} -help"')
    return Options(socket=socket_path, json=as_json, stats=stats), argv[i:]


def _show(options: Options, request: ShowTunnels | ShowSessions) -> str:
    """Ask, and format the answer (ControlError if it is malformed)."""
    if isinstance(request, ShowTunnels):
        tunnels = client.call(options.socket, request)
        formatter = show.json_tunnels if options.json else show.format_tunnels
        return formatter(tunnels, options.stats)
    sessions = client.call(options.socket, request)
    if options.json:
        return show.json_sessions(sessions, options.stats)
    return show.format_sessions(sessions, options.stats)


def run_l2tp(options: Options, argv: list[str]) -> int:
    """``add|del|show tunnel|session ...``: the ``ip l2tp`` grammar."""
    try:
        command = grammar.parse(argv)
    except grammar.HelpRequested as exc:
        _usage()
        return EXIT_OK if exc.explicit else EXIT_USAGE
    except (ConfigError, MissingArgument, grammar.UsageError) as exc:
        _error(exc)
        return EXIT_USAGE
    for warning in command.warnings:
        print(warning, file=sys.stderr)
    request = command.request()
    try:
        if isinstance(request, ShowTunnels | ShowSessions):
            text = _show(options, request)
        else:
            client.call(options.socket, request)
            text = ""
    except RefusedError as exc:
        _error(exc)
        return EXIT_USAGE
    except ControlError as exc:
        _error(exc)
        return EXIT_UNREACHABLE
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()
    return EXIT_OK


PEER_CONFIG_USAGE = f"""\
Usage: {PROG} [ OPTIONS ] peer-config --for {{ linux | qemu | cisco | tshark }}
          [ tunnel_id ID ] [ session_id ID ] [ --config FILE ] [ --id NETDEV_ID ]

Prints what the far end of our tunnels and sessions (read from l2tpv3d, or from the
TOML FILE with --config) must be configured with: `ip l2tp` lines, a QEMU -netdev
argument (notes on stderr) or a Cisco IOS manual xconnect; or the tshark command
lines that decode their packets. See docs/peer-config.md.
"""


def _peer_config_args(argv: list[str]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        word = argv[i]
        key, eq, inline = word.partition("=")
        if key in ("--for", "--config", "--id", "tunnel_id", "session_id", "tid", "sid"):
            if eq and key.startswith("--"):
                value = inline
            else:
                i += 1
                if i >= len(argv):
                    raise grammar.UsageError(f'option "{word}" needs a value')
                value = argv[i]
            if key == "--for":
                try:
                    args["for"] = peerconfig.Target(value)
                except ValueError:
                    raise grammar.UsageError(
                        f'"--for {value}" is unknown: linux, qemu, cisco or tshark'
                    ) from None
            elif key in ("--config", "--id"):
                args[key[2:]] = value
            else:
                field = {"tid": "tunnel_id", "sid": "session_id"}.get(key, key)
                args[field] = grammar.parse_u32(field, value, "ID")
        elif word in ("-h", "--help", "help"):
            raise grammar.HelpRequested(explicit=True)
        else:
            raise grammar.UsageError(f'unknown option "{word}"')
        i += 1
    if "for" not in args:
        raise grammar.HelpRequested(explicit=False)
    return args


def _our_configs(
    options: Options, config_file: str | None
) -> tuple[list[TunnelConfig], list[SessionConfig]]:
    if config_file is not None:
        return configfile.load_config(config_file)
    # A refusal (RefusedError) is a ControlError here: nothing to mirror.
    tunnels: list[TunnelState] = client.call(options.socket, ShowTunnels())
    sessions: list[SessionState] = client.call(options.socket, ShowSessions())
    return [t.config for t in tunnels], [s.config for s in sessions]


def _our_sas(options: Options, config_file: str | None) -> list[peerxfrm.SaView]:
    """ESP SAs to mirror: with their keys from the TOML file, else without from l2tpv3d."""
    if config_file is not None:
        return [peerxfrm.view_of_config(c) for c in configfile.load_sas(config_file)]
    try:
        states = client.call(options.socket, ShowSas())
    except RefusedError:
        return []  # a daemon without ESP (no show_sas operation)
    return [peerxfrm.view_of_state(s.info) for s in states]


def run_peer_config(options: Options, argv: list[str]) -> int:
    """``peer-config --for linux|qemu|cisco [tunnel_id ID] [session_id ID]``."""
    try:
        args = _peer_config_args(argv)
    except grammar.HelpRequested as exc:
        sys.stderr.write(PEER_CONFIG_USAGE)
        return EXIT_OK if exc.explicit else EXIT_USAGE
    except (ConfigError, grammar.UsageError) as exc:
        _error(exc)
        return EXIT_USAGE
    try:
        tunnels, sessions = _our_configs(options, args.get("config"))
    except ControlError as exc:
        _error(exc)
        return EXIT_UNREACHABLE
    except L2TPError as exc:
        _error(exc)
        return EXIT_USAGE
    tid, sid = args.get("tunnel_id"), args.get("session_id")
    sessions = [
        s for s in sessions
        if (tid is None or s.tunnel_id == tid) and (sid is None or s.session_id == sid)
    ]  # fmt: skip
    if sid is not None:
        wanted = {s.tunnel_id for s in sessions}
        tunnels = [t for t in tunnels if t.tunnel_id in wanted]
    tunnels = [t for t in tunnels if tid is None or t.tunnel_id == tid]
    if not tunnels:
        given = [f"{k} {v}" for k, v in (("tunnel_id", tid), ("session_id", sid)) if v]
        _error(f"nothing matches {' '.join(given)}" if given else "no tunnels to mirror")
        return EXIT_USAGE
    try:
        if args["for"] is peerconfig.Target.QEMU:
            text, notes = peerconfig.qemu(tunnels, sessions, args.get("id", "l2tpv3"))
        elif args["for"] is peerconfig.Target.LINUX:
            sas = _our_sas(options, args.get("config"))
            shapes = peerxfrm.esp_shapes(sas)
            text, notes = peerconfig.render(args["for"], tunnels, sessions, shapes)
            text += peerxfrm.xfrm_lines(tunnels, sas)
        else:
            text, notes = peerconfig.render(args["for"], tunnels, sessions)
    except ControlError as exc:
        _error(exc)
        return EXIT_UNREACHABLE
    except L2TPError as exc:
        _error(exc)
        return EXIT_USAGE
    for note in notes:
        print(f"# {note}", file=sys.stderr)
    sys.stdout.write(text)
    sys.stdout.flush()
    return EXIT_OK


def run_explain(options: Options, argv: list[str]) -> int:
    """``explain ...``: a packet's fields and verdict, or ``--overhead``
    (l2tpv3.tools.explain; imported here only, so scapy loads only for this command)."""
    try:
        from l2tpv3.tools import explain  # the one tools import of the cli: pyproject.toml
    except ImportError as exc:  # scapy missing from a hand-made environment
        _error(f"explain needs scapy ({exc}): pip install scapy")
        return EXIT_USAGE
    return explain.run(argv, options.socket, options.json)


# Subcommands by their exact first word; anything else is read by the `ip l2tp`
# grammar (run_l2tp), which matches add/del/show by prefix.
# EXTENSION POINT: a subcommand is a function (options, argv) -> exit status.
SUBCOMMANDS: dict[str, Subcommand] = {
    # `l2tpv3 l2tp add ...`, for lines written for `ip l2tp`.
    "l2tp": run_l2tp,
    "peer-config": run_peer_config,
    "genkey": lambda options, argv: sa.run_genkey(argv),
    "explain": run_explain,
    "capture": lambda options, argv: capture.run_capture(options.socket, argv),
}


def run_sa(options: Options, argv: list[str]) -> int:
    """``add|del|show sa ...`` (ESP, issue 9; l2tpv3/cli/sa.py)."""
    action = "add" if grammar.matches(argv[0], "add") else "del"
    if grammar.matches(argv[0], "show") or grammar.matches(argv[0], "list"):
        action = "show"
    try:
        request, warnings = sa.parse_sa(action, argv[2:])
    except sa.SaUsageError as exc:
        sys.stderr.write(sa.SA_USAGE)
        return EXIT_OK if str(exc) == "help" else EXIT_USAGE
    except L2TPError as exc:
        _error(exc)
        return EXIT_USAGE
    for warning in warnings:
        print(warning, file=sys.stderr)
    text = ""
    try:
        if isinstance(request, ShowSas):
            states = client.call(options.socket, request)
            text = (sa.json_sas if options.json else sa.format_sas)(states, options.stats)
        else:
            client.call(options.socket, request)
    except RefusedError as exc:
        _error(exc)
        return EXIT_USAGE
    except ControlError as exc:
        _error(exc)
        return EXIT_UNREACHABLE
    sys.stdout.write(text)
    sys.stdout.flush()
    return EXIT_OK


def _main(argv: list[str]) -> int:
    try:
        options, rest = _parse_options(argv)
    except grammar.UsageError as exc:
        _error(exc)
        return EXIT_USAGE
    if not rest:
        _usage()
        return EXIT_USAGE
    if len(rest) >= 2 and rest[1] == "sa":
        return run_sa(options, rest)
    handler = SUBCOMMANDS.get(rest[0])
    if handler is not None:
        return handler(options, rest[1:])
    return run_l2tp(options, rest)


def main(argv: list[str] | None = None) -> int:
    """The ``l2tpv3`` console script; returns the exit status."""
    try:
        return _main(sys.argv[1:] if argv is None else list(argv))
    except _Exit as stop:
        return stop.status
    except L2TPError as exc:
        _error(exc)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`l2tpv3 show tunnel | head`): stop quietly, and keep
        # Python from complaining when it flushes stdout at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_UNREACHABLE


if __name__ == "__main__":
    sys.exit(main())
