"""``l2tpv3 add|del|show sa`` and ``l2tpv3 genkey``: ESP SAs in the style of ``ip xfrm state``.

    l2tpv3 add sa tunnel_id ID dir { in | out } spi SPI
        { aead ALG key KEY | enc ALG key KEY auth ALG auth_key KEY }
        [ replay_window N ] [ esn ] [ encap espinudp SPORT DPORT ]
    l2tpv3 del sa tunnel_id ID dir { in | out } spi SPI
    l2tpv3 show sa [ tunnel_id ID ]
    l2tpv3 genkey ALG
    KEY := { 0xHEX | @FILE | - }     (- reads it from stdin)

A key typed on the command line is accepted, as ``ip xfrm`` accepts it, with a warning:
every user of the host can read it in the process list. ``@FILE`` must not be readable
by group or others. No key is ever printed (``show``, ``-j``, errors).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from l2tpv3.config import (
    SA_AEAD_ALGS,
    SA_AUTH_ALGS,
    SA_ENC_ALGS,
    SaConfig,
    SaDir,
    SecretKey,
    check_enum,
    check_id,
    check_port,
    parse_key,
    read_key_file,
)
from l2tpv3.control.protocol import AddSa, DelSa, Request, SaState, ShowSas
from l2tpv3.errors import ConfigError, L2TPError, MissingArgument
from l2tpv3.proto.esp import genkey

__all__ = ["SA_USAGE", "format_sas", "json_sas", "parse_sa", "run_genkey"]

SA_USAGE = """\
Usage: l2tpv3 [ OPTIONS ] add sa tunnel_id ID dir { in | out } spi SPI
          { aead ALG key KEY | enc ALG key KEY auth ALG auth_key KEY }
          [ replay_window N ] [ esn ] [ encap espinudp SPORT DPORT ]
       l2tpv3 [ OPTIONS ] del sa tunnel_id ID dir { in | out } spi SPI
       l2tpv3 [ OPTIONS ] show sa [ tunnel_id ID ]
       l2tpv3 genkey ALG
Where: KEY := { 0xHEX | @FILE | - }
       ALG := { rfc4106(gcm(aes)) | rfc7539esp(chacha20,poly1305) | cbc(aes) }
              auth ALG := { hmac(sha256) | hmac(sha1) }
       SPI := { 256..4294967295 } (0x hex or decimal)
"""

_COMMAND_LINE_WARNING = (
    "Warning: a key on the command line is visible to every user in the process list; "
    "use @FILE or - (stdin)"
)


class SaUsageError(L2TPError):
    """The ``sa`` command line does not fit the grammar."""


def _number(field: str, text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise ConfigError(field, text, "not a valid number") from None


def _key(field: str, text: str, warnings: list[str], stdin: Callable[[], str]) -> SecretKey:
    if text.startswith("@"):
        return read_key_file(field, text[1:])
    if text == "-":
        return parse_key(field, stdin())
    if _COMMAND_LINE_WARNING not in warnings:
        warnings.append(_COMMAND_LINE_WARNING)
    return parse_key(field, text)


def parse_sa(
    action: str, words: list[str], stdin: Callable[[], str] = sys.stdin.readline
) -> tuple[Request[object], list[str]]:
    """``words``: what follows ``add|del|show sa``. The request, and warnings."""
    values: dict[str, Any] = {}
    warnings: list[str] = []
    i = 0

    def value(keyword: str) -> str:
        nonlocal i
        i += 1
        if i >= len(words):
            raise SaUsageError(f'option "{keyword}" needs a value')
        return words[i]

    while i < len(words):
        word = words[i]
        if word in ("tunnel_id", "tid"):
            values["tunnel_id"] = check_id("tunnel_id", _number("tunnel_id", value(word)))
        elif word == "dir":
            values["dir"] = check_enum("dir", value(word), SaDir)
        elif word == "spi":
            values["spi"] = _number("spi", value(word))
        elif word in ("aead", "enc", "auth"):
            values[word] = value(word)
        elif word == "key":
            values["key"] = _key("key", value(word), warnings, stdin)
        elif word == "auth_key":
            values["auth_key"] = _key("auth_key", value(word), warnings, stdin)
        elif word == "replay_window":
            values["replay_window"] = _number("replay_window", value(word))
        elif word == "esn":
            values["esn"] = True
        elif word == "encap":
            kind = value(word)
            if kind != "espinudp":
                raise ConfigError("encap", kind, "must be espinudp")
            values["encap_sport"] = check_port("encap_sport", _number("sport", value(word)))
            values["encap_dport"] = check_port("encap_dport", _number("dport", value(word)))
        elif word in ("help", "-h", "--help"):
            raise SaUsageError("help")
        else:
            raise SaUsageError(f'unknown option "{word}"')
        i += 1
    if action == "show":
        return ShowSas(values.get("tunnel_id")), warnings
    for field in ("tunnel_id", "dir", "spi"):
        if field not in values:
            raise MissingArgument(field)
    if action == "del":
        return DelSa(values["tunnel_id"], values["dir"], values["spi"]), warnings
    if "key" not in values:
        raise MissingArgument("key")
    return AddSa(SaConfig(**values)), warnings


def _drops_line(state: SaState) -> str:
    return " ".join(f"{k} {v}" for k, v in state.drops.items())


def format_sas(states: list[SaState], stats: bool) -> str:
    """``show sa``: one block per SA, never a key."""
    lines: list[str] = []
    for st in states:
        info = st.info
        spi = info.get("spi")
        lines.append(
            f"SA tunnel {info.get('tunnel_id')} dir {info.get('dir')} spi 0x{spi:08x}"
            if isinstance(spi, int)
            else "SA"
        )
        if info.get("aead"):
            lines.append(f"  aead {info['aead']} icv 128")
        else:
            lines.append(f"  enc {info.get('enc')} auth {info.get('auth')}")
        extra = [f"replay_window {info.get('replay_window', 0)}"]
        if info.get("esn"):
            extra.append("esn")
        if info.get("encap_sport"):
            extra.append(f"encap espinudp {info['encap_sport']} {info['encap_dport']}")
        lines.append("  " + " ".join(extra))
        if stats:
            s = st.stats
            lines.append(
                f"  TX packets {s['tx_packets']} bytes {s['tx_bytes']} errors {s['tx_errors']}"
            )
            lines.append(f"  RX packets {s['rx_packets']} bytes {s['rx_bytes']}")
            lines.append(f"  drops {_drops_line(st)}")
    return "\n".join(lines) + ("\n" if lines else "")


def json_sas(states: list[SaState], stats: bool) -> str:
    out = []
    for st in states:
        entry = st.to_json()
        if not stats:
            entry.pop("stats", None)
            entry.pop("drops", None)
        out.append(entry)
    return json.dumps(out) + "\n"


def run_genkey(argv: list[str]) -> int:
    """``l2tpv3 genkey ALG``: a fresh random key as 0xHEX on stdout (2 on a bad ALG)."""
    algs = [*SA_AEAD_ALGS, *SA_ENC_ALGS, *SA_AUTH_ALGS]
    if len(argv) != 1 or argv[0] not in algs:
        print(f"Error: genkey needs one of {' | '.join(algs)}", file=sys.stderr)
        return 2
    key = genkey(argv[0])
    sys.stdout.write("0x" + key.hex() + "\n")
    sys.stdout.flush()
    return 0
