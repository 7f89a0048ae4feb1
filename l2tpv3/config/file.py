"""The daemon's TOML config file: a site's tunnels and sessions, in ``ip l2tp`` names.

    [[tunnel]]
    tunnel_id = 3000
    peer_tunnel_id = 4000
    encap = "udp"
    local = "192.0.2.1"
    remote = "198.51.100.1"
    udp_sport = 5000
    udp_dport = 6000

      [[tunnel.session]]          # tunnel_id is taken from the enclosing tunnel
      session_id = 1000
      peer_session_id = 2000
      cookie = "014d3636deadbeef"

    [[session]]                   # or flat, naming its tunnel
    tunnel_id = 3000
    session_id = 1001
    peer_session_id = 2001

Switches take ``true``/``false`` or iproute2's ``"on"``/``"off"``.

ESP SAs (docs/security.md), as ``l2tpv3 add sa``; a file holding keys must not be
readable by group or others (it is refused)::

    [[sa]]
    tunnel_id = 3000
    dir = "out"
    spi = 0x1000
    aead = "rfc4106(gcm(aes))"
    key = "0x..."                 # l2tpv3 genkey 'rfc4106(gcm(aes))'
    replay_window = 64

Liveness (docs/usage.md "Liveness"), per session; the hooks exist only here::

      liveness = "arp 10.1.0.2"     # or "idle", "hello"; liveness_addr = "..." also
      liveness_interval = 2         # seconds
      liveness_dead = 3             # intervals
      on_down = ["/usr/local/sbin/site-down", "lan"]   # argv, run without a shell
      on_up = ["/sbin/ifup", "lan"]
"""

from __future__ import annotations

import tomllib
from typing import Any, TypeVar

from l2tpv3.config import SaConfig, SessionConfig, TunnelConfig, check_private
from l2tpv3.errors import ConfigError, L2TPError

_Cfg = TypeVar("_Cfg", TunnelConfig, SessionConfig)

_SWITCHES = ("udp_csum", "udp6_csum_tx", "udp6_csum_rx")


def load_config(path: str) -> tuple[list[TunnelConfig], list[SessionConfig]]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise L2TPError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise L2TPError(f"config file {path}: {exc}") from None
    return parse_config(data, path)


def parse_config(
    data: dict[str, Any], where: str = "config"
) -> tuple[list[TunnelConfig], list[SessionConfig]]:
    unknown = set(data) - {"tunnel", "session", "sa"}
    if unknown:
        raise L2TPError(f"{where}: unknown section [{sorted(unknown)[0]}]")
    tunnels: list[TunnelConfig] = []
    sessions: list[SessionConfig] = []
    for i, raw in enumerate(_tables(data, "tunnel", where)):
        entry = dict(raw)
        nested = entry.pop("session", [])
        for key in _SWITCHES:
            if key in entry:
                entry[key] = _switch(key, entry[key])
        tunnels.append(_build(TunnelConfig, entry, f"{where}: tunnel #{i + 1}"))
        for j, sraw in enumerate(_tables({"session": nested}, "session", where)):
            sentry = dict(sraw)
            sentry.setdefault("tunnel_id", entry.get("tunnel_id"))
            sessions.append(
                _build(SessionConfig, sentry, f"{where}: tunnel #{i + 1} session #{j + 1}")
            )
    for i, raw in enumerate(_tables(data, "session", where)):
        sessions.append(_build(SessionConfig, dict(raw), f"{where}: session #{i + 1}"))
    return tunnels, sessions


def _tables(data: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise L2TPError(f"{where}: [{key}] must be an array of tables ([[{key}]])")
    return value


def _switch(field: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("on", "off"):
        return value == "on"
    raise ConfigError(field, value, "must be on or off")


def _build(cls: type[_Cfg], entry: dict[str, Any], where: str) -> _Cfg:
    mode = entry.get("liveness")
    if cls is SessionConfig and isinstance(mode, str) and " " in mode.strip():
        # "arp ADDR", as on the command line.
        entry["liveness"], entry["liveness_addr"] = mode.split(None, 1)
    try:
        return cls.from_dict(entry)
    except TypeError as exc:
        raise L2TPError(f"{where}: {_missing(exc)}") from None
    except L2TPError as exc:
        raise L2TPError(f"{where}: {exc}") from None


def _missing(exc: TypeError) -> str:
    # dataclass __init__ says "missing 1 required positional argument: 'tunnel_id'".
    text = str(exc)
    if "'" in text:
        return f'argument "{text.split(chr(39))[1]}" is required'
    return text


def load_sas(path: str) -> list[SaConfig]:
    """The file's ``[[sa]]`` tables; a file with any is refused unless private."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise L2TPError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise L2TPError(f"config file {path}: {exc}") from None
    return parse_sas(data, path)


def parse_sas(data: dict[str, Any], where: str = "config") -> list[SaConfig]:
    tables = _tables(data, "sa", where)
    if tables and where != "config":
        check_private(where, "config file with keys")
    out = []
    for i, raw in enumerate(tables):
        entry = dict(raw)
        if "esn" in entry:
            entry["esn"] = _switch("esn", entry["esn"])
        try:
            out.append(SaConfig.from_dict(entry))
        except TypeError as exc:
            raise L2TPError(f"{where}: sa #{i + 1}: {_missing(exc)}") from None
        except L2TPError as exc:
            raise L2TPError(f"{where}: sa #{i + 1}: {exc}") from None
    return out
