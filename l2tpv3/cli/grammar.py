"""The ``ip l2tp`` command grammar: argv (after the global options) to a :class:`Command`.

This follows iproute2's ip/ipl2tp.c:

- the first word is matched by prefix as ``matches()`` does: ``a``/``add``,
  ``d``/``del``/``delete``, ``s``/``show``, ``l``/``lst``/``list``, ``h``/``help``;
- after it, every keyword is accepted by every command, anywhere on the line, and the
  words ``tunnel`` and ``session`` say what the command is about. A keyword that does
  not apply to the command (``name`` for a tunnel, ``udp_sport`` for a session, ...)
  still has its value checked and is then ignored, as iproute2 does;
- a repeated keyword: the last one wins, except ``seq``, whose ``send`` and ``recv``
  add up as iproute2's flags do (``seq send seq recv`` is ``both``);
- numbers are read like iproute2's ``get_u32``/``get_u16`` (decimal, ``0x`` hex,
  leading-zero octal); IDs must be 1..4294967295 and ports 1..65535;
- ``offset`` and ``peer_offset`` take a value and are ignored with a warning.

Our extensions: ``reorder_timeout MS`` (the kernel's netlink-only option),
``seq_policy kernel|rfc3931``, ``mss_clamp off|auto|MSS`` and ``liveness { off | idle |
arp ADDR | hello } [ interval S ] [ dead N ]`` (docs/usage.md "Liveness"; hooks only in
the config file), ``trunk IFNAME vlan VID [pop]`` (docs/usage.md "Per-VLAN sessions").

Where we differ, on purpose: ``add tunnel ... session`` (both at once) is refused
instead of creating both; ``del session`` requires ``tunnel_id`` (iproute2 would send
tunnel 0 and fail in the kernel).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from l2tpv3.config import (
    Encap,
    IPAddress,
    L2SpecType,
    LivenessMode,
    SeqMode,
    SeqPolicy,
    SessionConfig,
    TunnelConfig,
    check_enum,
    check_id,
    check_ifname,
    check_port,
    parse_address,
    parse_cookie,
    parse_mss_clamp,
    parse_vid,
)
from l2tpv3.control.protocol import (
    AddSession,
    AddTunnel,
    DelSession,
    DelTunnel,
    Request,
    ShowSessions,
    ShowTunnels,
)
from l2tpv3.errors import ConfigError, L2TPError, MissingArgument

__all__ = [
    "Command",
    "HelpRequested",
    "UsageError",
    "argv_for",
    "matches",
    "parse",
    "parse_u32",
]

Action = Literal["add", "del", "show"]
Kind = Literal["tunnel", "session"]
_T = TypeVar("_T")


class UsageError(L2TPError):
    """The command line does not fit the grammar: unknown word, missing value, ..."""


class HelpRequested(UsageError):
    """Print the usage text: ``explicit`` when the user asked for it with ``help``."""

    def __init__(self, explicit: bool) -> None:
        self.explicit = explicit
        super().__init__("help requested" if explicit else "command is not complete")


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed ``add|del|show tunnel|session`` command.

    For ``add``, ``tunnel`` or ``session`` holds the validated config and
    ``tunnel_id``/``session_id`` repeat its IDs. For ``del`` and ``show`` the IDs say
    what to act on (``None``: not given, which ``show`` takes as "all").
    """

    action: Action
    kind: Kind
    tunnel: TunnelConfig | None = None
    session: SessionConfig | None = None
    tunnel_id: int | None = None
    session_id: int | None = None
    warnings: tuple[str, ...] = ()

    def request(self) -> Request[object]:
        """The control-protocol request record (:mod:`l2tpv3.control.protocol`)."""
        if self.action == "add":
            if self.kind == "tunnel":
                assert self.tunnel is not None
                return AddTunnel(self.tunnel)
            assert self.session is not None
            return AddSession(self.session)
        if self.action == "del":
            assert self.tunnel_id is not None
            if self.kind == "tunnel":
                return DelTunnel(self.tunnel_id)
            assert self.session_id is not None
            return DelSession(self.tunnel_id, self.session_id)
        if self.kind == "tunnel":
            return ShowTunnels(self.tunnel_id)
        return ShowSessions(self.tunnel_id, self.session_id)

    def to_request(self) -> dict[str, object]:
        """The request as it goes on the control socket."""
        return self.request().to_json()


def matches(word: str, keyword: str) -> bool:
    """iproute2's ``matches()``: ``word`` is a non-empty prefix of ``keyword``."""
    return bool(word) and keyword.startswith(word)


# strtoul(base 0) as get_u32 uses it: optional leading space and "+", then hex, octal
# or decimal, and nothing after. A "-" is refused: strtoul would wrap it past 32 bits.
_NUMBER = re.compile(r"\s*\+?(?:0[xX](?P<hex>[0-9a-fA-F]+)|(?P<oct>0[0-7]*)|(?P<dec>[1-9][0-9]*))")


def _strtoul(field: str, text: str, what: str) -> int:
    m = _NUMBER.fullmatch(text)
    if m is None:
        raise ConfigError(field, text, f"not a valid {what}")
    if m["hex"] is not None:
        return int(m["hex"], 16)
    if m["oct"] is not None:
        return int(m["oct"], 8)
    return int(m["dec"], 10)


def parse_u32(field: str, text: str, what: str = "number") -> int:
    """Read ``text`` as iproute2's ``get_u32(..., 0)`` does; errors name ``field``."""
    value = _strtoul(field, text, what)
    if value > 0xFFFFFFFF:
        raise ConfigError(field, text, f"not a valid {what} (more than 32 bits)")
    return value


@contextmanager
def _as_typed(text: str) -> Iterator[None]:
    """Report the value as the user typed it (``0x10``, ``UDP``), not as parsed."""
    try:
        yield
    except ConfigError as exc:
        raise ConfigError(exc.field, text, exc.reason) from None


def _checked(field: str, text: str, convert: Callable[[str], _T]) -> _T:
    with _as_typed(text):
        return convert(text)


def _id(field: str, text: str) -> int:
    return _checked(field, text, lambda t: check_id(field, _strtoul(field, t, "ID")))


def _port(field: str, text: str) -> int:
    return _checked(field, text, lambda t: check_port(field, _strtoul(field, t, "port")))


def _on_off(field: str, text: str) -> bool:
    # iproute2 compares with strcmp: "ON" is refused.
    if text == "on":
        return True
    if text == "off":
        return False
    raise ConfigError(field, text, "must be on or off")


def _address(field: str, text: str) -> IPAddress:
    # get_addr(..., AF_UNSPEC) takes these words for the IPv4 wildcard address.
    wildcard = text in ("any", "all", "default")
    return _checked(field, text, lambda t: parse_address(field, "0.0.0.0" if wildcard else t))


# Keyword aliases as ipl2tp.c spells them; the value is the canonical field name.
_ALIASES = {
    "tid": "tunnel_id",
    "ptid": "peer_tunnel_id",
    "sid": "session_id",
    "psid": "peer_session_id",
}

_ID_FIELDS = ("tunnel_id", "peer_tunnel_id", "session_id", "peer_session_id")


class _Args:
    """What the keywords said, before the command decides which of it applies."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.send_seq = False
        self.recv_seq = False
        self.tunnel = False
        self.session = False
        self.warnings: list[str] = []

    def given(self, field: str) -> bool:
        return field in self.values


def _parse_keywords(words: list[str]) -> _Args:
    args = _Args()
    i = 0

    def value(keyword: str) -> str:
        nonlocal i
        i += 1
        if i >= len(words):
            raise UsageError(f'option "{keyword}" needs a value')
        return words[i]

    while i < len(words):
        word = words[i]
        field = _ALIASES.get(word, word)
        if word == "tunnel":
            args.tunnel = True
        elif word == "session":
            args.session = True
        elif field in _ID_FIELDS:
            args.values[field] = _id(field, value(word))
        elif field in ("udp_sport", "udp_dport"):
            args.values[field] = _port(field, value(word))
        elif field in ("local", "remote"):
            args.values[field] = _address(field, value(word))
        elif field == "encap":
            text = value(word)
            args.values[field] = _checked(field, text, lambda t: check_enum("encap", t, Encap))
        elif field in ("udp_csum", "udp6_csum_tx", "udp6_csum_rx"):
            args.values[field] = _on_off(field, value(word))
        elif field == "name":
            args.values[field] = check_ifname("name", value(word))
        elif field == "trunk":
            args.values[field] = check_ifname("trunk", value(word))
        elif field == "vlan":
            args.values[field] = parse_vid("vlan", value(word))
            if i + 1 < len(words) and words[i + 1] == "pop":
                i += 1
                args.values["vlan_pop"] = True
        elif field in ("cookie", "peer_cookie"):
            args.values[field] = parse_cookie(field, value(word))
        elif field == "l2spec_type":
            text = value(word)
            args.values[field] = _checked(
                field, text, lambda t: check_enum("l2spec_type", t.lower(), L2SpecType)
            )
        elif field == "seq":
            text = value(word)
            mode = _checked(field, text, lambda t: check_enum("seq", t.lower(), SeqMode))
            if mode is SeqMode.NONE:
                args.send_seq = args.recv_seq = False
            args.send_seq |= mode.send
            args.recv_seq |= mode.recv
        elif field == "seq_policy":
            text = value(word)
            args.values[field] = _checked(
                field, text, lambda t: check_enum("seq_policy", t.lower(), SeqPolicy)
            )
        elif field == "reorder_timeout":
            args.values[field] = parse_u32(field, value(word), "timeout")
        elif field == "mss_clamp":
            text = value(word)
            args.values[field] = _checked(field, text, lambda t: parse_mss_clamp("mss_clamp", t))
        elif field == "liveness":
            text = value(word)
            live = _checked(field, text, lambda t: check_enum("liveness", t.lower(), LivenessMode))
            args.values[field] = live
            args.values.pop("liveness_addr", None)
            if live is LivenessMode.ARP:
                args.values["liveness_addr"] = _address("liveness arp", value("liveness arp"))
        elif field == "interval":
            args.values["liveness_interval"] = _seconds("interval", value(word))
        elif field == "dead":
            args.values["liveness_dead"] = parse_u32("dead", value(word), "count")
        elif field in ("offset", "peer_offset"):
            value(word)
            args.warnings.append(f'Ignoring option "{field}"')
        elif matches(word, "help"):
            raise HelpRequested(explicit=True)
        else:
            raise UsageError(f'unknown option "{word}"')
        i += 1
    return args


def _seconds(field: str, text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise ConfigError(field, text, "must be a number of seconds") from None
    if not 0.1 <= seconds <= 3600:
        raise ConfigError(field, text, "must be 0.1..3600 seconds")
    return seconds


def _require(args: _Args, *fields: str) -> None:
    for field in fields:
        if not args.given(field):
            raise MissingArgument(field)


def _kind(args: _Args, action: Action) -> Kind:
    if not args.tunnel and not args.session:
        raise MissingArgument("tunnel or session")
    if args.tunnel and args.session and action == "add":
        raise UsageError('"tunnel" and "session" cannot be added by one command')
    # For del and show, iproute2 acts on the session when both words are given.
    return "session" if args.session else "tunnel"


def _add(args: _Args) -> Command:
    kind = _kind(args, "add")
    v = args.values
    _require(args, "tunnel_id")
    warnings = tuple(args.warnings)
    if kind == "session":
        # iproute2's order: peer_session_id is reported before session_id.
        _require(args, "peer_session_id", "session_id")
        if args.send_seq and args.recv_seq:
            seq = SeqMode.BOTH
        elif args.send_seq:
            seq = SeqMode.SEND
        elif args.recv_seq:
            seq = SeqMode.RECV
        else:
            seq = SeqMode.NONE
        session = SessionConfig(
            tunnel_id=v["tunnel_id"],
            session_id=v["session_id"],
            peer_session_id=v["peer_session_id"],
            name=v.get("name"),
            cookie=v.get("cookie", b""),
            peer_cookie=v.get("peer_cookie", b""),
            l2spec_type=v.get("l2spec_type", L2SpecType.DEFAULT),
            seq=seq,
            reorder_timeout=v.get("reorder_timeout", 0),
            seq_policy=v.get("seq_policy", SeqPolicy.KERNEL),
            mss_clamp=v.get("mss_clamp", "off"),
            trunk=v.get("trunk"),
            vlan=v.get("vlan"),
            vlan_pop=v.get("vlan_pop", False),
            **_liveness(v),
        )
        return Command(
            "add",
            "session",
            session=session,
            tunnel_id=session.tunnel_id,
            session_id=session.session_id,
            warnings=warnings,
        )
    _require(args, "peer_tunnel_id", "local", "remote")
    encap = v.get("encap", Encap.UDP)
    if encap is Encap.UDP:
        _require(args, "udp_sport", "udp_dport")
    tunnel = TunnelConfig(
        tunnel_id=v["tunnel_id"],
        peer_tunnel_id=v["peer_tunnel_id"],
        local=v["local"],
        remote=v["remote"],
        encap=encap,
        udp_sport=v.get("udp_sport") if encap is Encap.UDP else None,
        udp_dport=v.get("udp_dport") if encap is Encap.UDP else None,
        # Like the ports, iproute2 sends the checksum options only for UDP.
        udp_csum=v.get("udp_csum", False) if encap is Encap.UDP else False,
        udp6_csum_tx=v.get("udp6_csum_tx", True) if encap is Encap.UDP else True,
        udp6_csum_rx=v.get("udp6_csum_rx", True) if encap is Encap.UDP else True,
    )
    return Command("add", "tunnel", tunnel=tunnel, tunnel_id=tunnel.tunnel_id, warnings=warnings)


def _liveness(v: dict[str, Any]) -> dict[str, Any]:
    mode = v.get("liveness", LivenessMode.OFF)
    timing = [k for k in ("liveness_interval", "liveness_dead") if k in v]
    if mode is LivenessMode.OFF:
        if timing:
            word = timing[0].removeprefix("liveness_")
            raise UsageError(f'option "{word}" needs "liveness idle|arp ADDR|hello"')
        return {}
    out: dict[str, Any] = {"liveness": mode}
    if mode is LivenessMode.ARP:
        addr = v["liveness_addr"]
        if addr.version != 4:
            raise ConfigError("liveness arp", addr, "must be an IPv4 address")
        out["liveness_addr"] = str(addr)
    for key in timing:
        out[key] = v[key]
    return out


def _del(args: _Args) -> Command:
    kind = _kind(args, "del")
    if args.tunnel:
        _require(args, "tunnel_id")
    if args.session:
        _require(args, "session_id")
    warnings = tuple(args.warnings)
    # iproute2 deletes a session whenever a session_id is given, even after "tunnel".
    if args.given("session_id"):
        _require(args, "tunnel_id")
        return Command(
            "del",
            "session",
            tunnel_id=args.values["tunnel_id"],
            session_id=args.values["session_id"],
            warnings=warnings,
        )
    assert kind == "tunnel"
    return Command("del", "tunnel", tunnel_id=args.values["tunnel_id"], warnings=warnings)


def _show(args: _Args) -> Command:
    kind = _kind(args, "show")
    return Command(
        "show",
        kind,
        tunnel_id=args.values.get("tunnel_id"),
        session_id=args.values.get("session_id") if kind == "session" else None,
        warnings=tuple(args.warnings),
    )


def parse(argv: list[str]) -> Command:
    """Parse ``add|del|show tunnel|session ...`` as ``ip l2tp`` does.

    Raises :class:`UsageError` (or its :class:`HelpRequested`) for words that do not
    fit, :class:`~l2tpv3.errors.MissingArgument` for a required option not given and
    :class:`~l2tpv3.errors.ConfigError` for a bad value.
    """
    if not argv:
        raise HelpRequested(explicit=False)
    verb, rest = argv[0], list(argv[1:])
    # The order of these tests is ipl2tp.c's: "h" is help, "d" delete, "l" list.
    if matches(verb, "help"):
        raise HelpRequested(explicit=True)
    if matches(verb, "add"):
        handler = _add
    elif matches(verb, "delete"):
        handler = _del
    elif matches(verb, "show") or matches(verb, "lst") or matches(verb, "list"):
        handler = _show
    else:
        raise UsageError(f'command "{verb}" is unknown, try "l2tpv3 help"')
    if not rest:
        raise HelpRequested(explicit=False)
    return handler(_parse_keywords(rest))


def argv_for(config: TunnelConfig | SessionConfig) -> list[str]:
    """The ``add tunnel|session ...`` words that :func:`parse` turns back into ``config``.

    Options at their default are left out, so the line reads as a person would type it.
    """
    words: list[str]
    if isinstance(config, TunnelConfig):
        words = ["add", "tunnel", "tunnel_id", str(config.tunnel_id)]
        words += ["peer_tunnel_id", str(config.peer_tunnel_id)]
        words += ["encap", config.encap.value]
        words += ["local", str(config.local), "remote", str(config.remote)]
        if config.encap is Encap.UDP:
            words += ["udp_sport", str(config.udp_sport), "udp_dport", str(config.udp_dport)]
            if config.udp_csum:
                words += ["udp_csum", "on"]
            if not config.udp6_csum_tx:
                words += ["udp6_csum_tx", "off"]
            if not config.udp6_csum_rx:
                words += ["udp6_csum_rx", "off"]
        return words
    words = ["add", "session"]
    if config.name is not None:
        words += ["name", config.name]
    words += ["tunnel_id", str(config.tunnel_id), "session_id", str(config.session_id)]
    words += ["peer_session_id", str(config.peer_session_id)]
    if config.cookie:
        words += ["cookie", config.cookie.hex()]
    if config.peer_cookie:
        words += ["peer_cookie", config.peer_cookie.hex()]
    if config.l2spec_type is not L2SpecType.DEFAULT:
        words += ["l2spec_type", config.l2spec_type.value]
    if config.seq is not SeqMode.NONE:
        words += ["seq", config.seq.value]
    if config.reorder_timeout:
        words += ["reorder_timeout", str(config.reorder_timeout)]
    if config.seq_policy is not SeqPolicy.KERNEL:
        words += ["seq_policy", config.seq_policy.value]
    if config.mss_clamp != "off":
        words += ["mss_clamp", config.mss_clamp]
    if config.trunk is not None and config.vlan is not None:
        words += ["trunk", config.trunk, "vlan", str(config.vlan)]
        if config.vlan_pop:
            words.append("pop")
    if config.liveness is not LivenessMode.OFF:
        words += ["liveness", config.liveness.value]
        if config.liveness_addr is not None:
            words.append(config.liveness_addr)
        words += ["interval", f"{config.liveness_interval:g}"]
        words += ["dead", str(config.liveness_dead)]
    return words
