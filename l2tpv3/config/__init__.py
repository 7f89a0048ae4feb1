"""Tunnel and session configuration: frozen, validated, with iproute2's names and defaults.

Every field carries the name ``ip l2tp`` uses for it, so a config file, a control
request and a command line all say the same thing. Validation errors name the field
and the bad value (:class:`~l2tpv3.errors.ConfigError`).
"""

from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any, TypeVar

from l2tpv3.constants import (
    COOKIE_LENGTHS,
    ID_MAX,
    ID_MIN,
    IFNAMSIZ,
    LIVENESS_DEAD,
    LIVENESS_INTERVAL,
    TCP_MIN_MSS,
    VLAN_VID_MAX,
    VLAN_VID_MIN,
)
from l2tpv3.errors import ConfigError, L2TPError, MissingArgument

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_E = TypeVar("_E", bound=StrEnum)


class Encap(StrEnum):
    UDP = "udp"
    IP = "ip"


class L2SpecType(StrEnum):
    NONE = "none"
    DEFAULT = "default"


class SeqMode(StrEnum):
    NONE = "none"
    SEND = "send"
    RECV = "recv"
    BOTH = "both"

    @property
    def send(self) -> bool:
        return self in (SeqMode.SEND, SeqMode.BOTH)

    @property
    def recv(self) -> bool:
        return self in (SeqMode.RECV, SeqMode.BOTH)


class SeqPolicy(StrEnum):
    """How received sequence numbers are judged.

    ``kernel`` copies Linux net/l2tp exactly (the default, for interop); ``rfc3931``
    follows RFC 3931 Appendix C, which accepts any newer packet at once.
    """

    KERNEL = "kernel"
    RFC3931 = "rfc3931"


class LivenessMode(StrEnum):
    """How a session tells that its peer is alive (docs/usage.md "Liveness").

    ``off`` (the default, as the kernel); ``idle``: anything received; ``arp``: replies
    to the ARP requests the daemon sends for ``liveness_addr``; ``hello``: RFC 3931
    HELLO answered by a ZLB ACK on the tunnel.
    """

    OFF = "off"
    IDLE = "idle"
    ARP = "arp"
    HELLO = "hello"


def check_id(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, value, "must be an integer")
    if not ID_MIN <= value <= ID_MAX:
        raise ConfigError(field, value, f"must be {ID_MIN}..{ID_MAX}")
    return value


def check_port(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, value, "must be an integer")
    if not 1 <= value <= 65535:
        raise ConfigError(field, value, "must be 1..65535")
    return value


def _check_bool(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(field, value, "must be on or off")
    return value


def check_enum(field: str, value: object, enum: type[_E]) -> _E:
    try:
        return enum(str(value))
    except ValueError:
        choices = " | ".join(e.value for e in enum)
        raise ConfigError(field, value, f"must be one of {choices}") from None


def parse_address(field: str, value: object) -> IPAddress:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        raise ConfigError(field, value, "not an IPv4 or IPv6 address") from None


def parse_cookie(field: str, value: object) -> bytes:
    """Accept bytes or iproute2's HEXSTR (8 or 16 hex digits)."""
    if isinstance(value, bytes):
        raw = value
    elif value == "":
        raw = b""
    elif isinstance(value, str):
        if len(value) not in (8, 16):
            raise ConfigError(field, value, "cookie must be either 8 or 16 hex digits")
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise ConfigError(field, value, "cookie must be a hex string") from None
    else:
        raise ConfigError(field, value, "cookie must be a hex string")
    if len(raw) not in COOKIE_LENGTHS:
        raise ConfigError(
            field, value.hex() if isinstance(value, bytes) else value, "cookie must be 4 or 8 bytes"
        )
    return raw


def check_ifname(field: str, value: object) -> str:
    """The rules of iproute2's check_ifname and the kernel's dev_valid_name."""
    if not isinstance(value, str) or not value:
        raise ConfigError(field, value, "not a valid ifname")
    if len(value) >= IFNAMSIZ:
        raise ConfigError(field, value, f"not a valid ifname (at most {IFNAMSIZ - 1} characters)")
    if value in (".", "..") or any(c == "/" or c == ":" or c.isspace() for c in value):
        raise ConfigError(field, value, "not a valid ifname")
    return value


_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def _check_endpoints(
    local: IPAddress, remote: IPAddress, encap: Encap, sport: int | None, dport: int | None
) -> None:
    """A tunnel joins two unicast endpoints: refuse what cannot be either end.

    The kernel accepts these and the tunnel then never carries a frame: a wildcard
    local is not one path (and IP-encap ownership is per local address), a multicast or
    broadcast peer answers nothing, and a tunnel whose peer is itself receives its own
    datagrams. remote == local is such a loop over IP (protocol 115 has no ports) and
    over UDP with udp_sport == udp_dport; over UDP with two ports it is two endpoints on
    one host (e.g. QEMU's ``-netdev l2tpv3`` next to the daemon), and allowed.
    """
    if local.is_unspecified:
        raise ConfigError("local", local, "must be an address of this host, not a wildcard")
    if local.is_multicast or local == _BROADCAST:
        raise ConfigError("local", local, "must be a unicast address")
    if remote.is_unspecified:
        raise ConfigError("remote", remote, "must be the peer's address, not a wildcard")
    if remote.is_multicast or remote == _BROADCAST:
        raise ConfigError("remote", remote, "must be a unicast address")
    if remote == local:
        if encap is Encap.IP:
            raise ConfigError("remote", remote, "must not be the local address with encap ip")
        if sport == dport:
            raise ConfigError(
                "remote", remote, "is the local address: udp_dport must differ from udp_sport"
            )


@dataclass(frozen=True, slots=True)
class TunnelConfig:
    """``ip l2tp add tunnel``: one underlay path between two addresses."""

    tunnel_id: int
    peer_tunnel_id: int
    local: IPAddress
    remote: IPAddress
    encap: Encap = Encap.UDP
    udp_sport: int | None = None
    udp_dport: int | None = None
    udp_csum: bool = False
    udp6_csum_tx: bool = True
    udp6_csum_rx: bool = True

    def __post_init__(self) -> None:
        check_id("tunnel_id", self.tunnel_id)
        check_id("peer_tunnel_id", self.peer_tunnel_id)
        object.__setattr__(self, "local", parse_address("local", self.local))
        object.__setattr__(self, "remote", parse_address("remote", self.remote))
        object.__setattr__(self, "encap", check_enum("encap", self.encap, Encap))
        if self.local.version != self.remote.version:
            raise ConfigError(
                "remote", self.remote, f"not the same address family as local {self.local}"
            )
        if self.encap is Encap.UDP:
            if self.udp_sport is None:
                raise MissingArgument("udp_sport")
            if self.udp_dport is None:
                raise MissingArgument("udp_dport")
            check_port("udp_sport", self.udp_sport)
            check_port("udp_dport", self.udp_dport)
        _check_endpoints(self.local, self.remote, self.encap, self.udp_sport, self.udp_dport)
        for name in ("udp_csum", "udp6_csum_tx", "udp6_csum_rx"):
            _check_bool(name, getattr(self, name))

    @property
    def family(self) -> int:
        return self.local.version

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["local"] = str(self.local)
        out["remote"] = str(self.remote)
        out["encap"] = self.encap.value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TunnelConfig:
        return cls(**_known_fields(cls, data, "tunnel"))


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """``ip l2tp add session``: one Ethernet pseudowire inside a tunnel.

    ``cookie`` is what we put in packets we send; ``peer_cookie`` is what we require in
    packets we receive (the kernel's direction; see docs/protocol.md).
    ``reorder_timeout`` is in milliseconds, as the kernel's netlink attribute.
    """

    tunnel_id: int
    session_id: int
    peer_session_id: int
    name: str | None = None
    cookie: bytes = b""
    peer_cookie: bytes = b""
    l2spec_type: L2SpecType = L2SpecType.DEFAULT
    seq: SeqMode = SeqMode.NONE
    reorder_timeout: int = 0
    seq_policy: SeqPolicy = SeqPolicy.KERNEL
    # Our extension: "off" (the kernel's behaviour), "auto" or an MSS in decimal.
    mss_clamp: str = "off"
    # Liveness and its hooks (docs/usage.md "Liveness"); the hooks are argv lists and
    # come from the config file only (the control socket refuses them).
    liveness: LivenessMode = LivenessMode.OFF
    liveness_addr: str | None = None
    liveness_interval: float = LIVENESS_INTERVAL
    liveness_dead: int = LIVENESS_DEAD
    on_up: tuple[str, ...] = ()
    on_down: tuple[str, ...] = ()
    # Per-VLAN sessions (docs/usage.md "Per-VLAN sessions"): the session sits on VLAN
    # `vlan` of the shared trunk TAP `trunk` instead of a TAP of its own; `vlan_pop`
    # removes the tag towards the peer and adds it back towards the trunk.
    trunk: str | None = None
    vlan: int | None = None
    vlan_pop: bool = False

    def __post_init__(self) -> None:
        check_id("tunnel_id", self.tunnel_id)
        object.__setattr__(self, "mss_clamp", parse_mss_clamp("mss_clamp", self.mss_clamp))
        check_id("session_id", self.session_id)
        check_id("peer_session_id", self.peer_session_id)
        if self.name is not None:
            check_ifname("name", self.name)
        object.__setattr__(self, "cookie", parse_cookie("cookie", self.cookie))
        object.__setattr__(self, "peer_cookie", parse_cookie("peer_cookie", self.peer_cookie))
        object.__setattr__(
            self, "l2spec_type", check_enum("l2spec_type", self.l2spec_type, L2SpecType)
        )
        object.__setattr__(self, "seq", check_enum("seq", self.seq, SeqMode))
        object.__setattr__(self, "seq_policy", check_enum("seq_policy", self.seq_policy, SeqPolicy))
        rt = self.reorder_timeout
        if isinstance(rt, bool) or not isinstance(rt, int) or not 0 <= rt <= 3_600_000:
            raise ConfigError("reorder_timeout", rt, "must be 0..3600000 milliseconds")
        if self.seq is not SeqMode.NONE and self.l2spec_type is L2SpecType.NONE:
            # RFC 4719 §3: sequence numbers live in the Default L2-Specific Sublayer.
            raise ConfigError("seq", self.seq.value, "sequencing needs l2spec_type default")
        _check_liveness(self)
        _check_vlan(self)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cookie"] = self.cookie.hex()
        out["peer_cookie"] = self.peer_cookie.hex()
        for key in ("l2spec_type", "seq", "seq_policy"):
            out[key] = getattr(self, key).value
        out["liveness"] = self.liveness.value
        out["on_up"] = list(self.on_up)
        out["on_down"] = list(self.on_down)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionConfig:
        return cls(**_known_fields(cls, data, "session"))


def _check_vlan(cfg: SessionConfig) -> None:
    if cfg.trunk is None:
        if cfg.vlan is not None:
            raise ConfigError("vlan", cfg.vlan, "needs trunk IFNAME")
        if cfg.vlan_pop:
            raise ConfigError("vlan_pop", "on", "needs trunk IFNAME vlan VID")
        return
    check_ifname("trunk", cfg.trunk)
    if cfg.name is not None:
        raise ConfigError("name", cfg.name, "a trunk session has no interface of its own")
    vid = cfg.vlan
    if vid is None:
        raise ConfigError("trunk", cfg.trunk, "needs vlan VID")
    if isinstance(vid, bool) or not isinstance(vid, int) or not VLAN_VID_MIN <= vid <= VLAN_VID_MAX:
        raise ConfigError("vlan", vid, f"must be {VLAN_VID_MIN}..{VLAN_VID_MAX}")
    if not isinstance(cfg.vlan_pop, bool):
        raise ConfigError("vlan_pop", cfg.vlan_pop, "must be true or false")
    if cfg.liveness is not LivenessMode.OFF:
        # The carrier it sets would be the trunk's, shared by every VLAN on it.
        raise ConfigError("liveness", cfg.liveness.value, "is not supported on a trunk session")


def parse_vid(field: str, text: str) -> int:
    """A VLAN ID as the `vlan` keyword takes it: 1..4094."""
    try:
        vid = int(text, 10)
    except ValueError:
        raise ConfigError(field, text, f"must be {VLAN_VID_MIN}..{VLAN_VID_MAX}") from None
    if not VLAN_VID_MIN <= vid <= VLAN_VID_MAX:
        raise ConfigError(field, text, f"must be {VLAN_VID_MIN}..{VLAN_VID_MAX}")
    return vid


def parse_mss_clamp(field: str, value: object) -> str:
    """``mss_clamp { off | auto | MSS }`` in its canonical form (an MSS as decimal text);
    TOML may give the MSS as an integer."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("off", "auto"):
            return text
        try:
            n = int(text, 0)
        except ValueError:
            raise ConfigError(field, value, "must be off, auto or an MSS") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        raise ConfigError(field, value, "must be off, auto or an MSS")
    if not TCP_MIN_MSS <= n <= 0xFFFF:
        raise ConfigError(field, value, f"an MSS must be {TCP_MIN_MSS}..65535")
    return str(n)


def _check_liveness(cfg: SessionConfig) -> None:
    set_ = object.__setattr__
    mode = check_enum("liveness", cfg.liveness, LivenessMode)
    set_(cfg, "liveness", mode)
    addr = cfg.liveness_addr
    if mode is LivenessMode.ARP:
        if addr is None:
            raise MissingArgument("liveness arp ADDR")
        try:
            target = ipaddress.IPv4Address(str(addr))
        except ValueError:
            raise ConfigError("liveness arp", addr, "must be an IPv4 address") from None
        if target.is_unspecified or target.is_multicast or target == _BROADCAST:
            raise ConfigError("liveness arp", addr, "must be a unicast address")
        set_(cfg, "liveness_addr", str(target))
    elif addr is not None:
        raise ConfigError("liveness_addr", addr, "is only for liveness arp")
    iv = cfg.liveness_interval
    if isinstance(iv, bool) or not isinstance(iv, int | float) or not 0.1 <= iv <= 3600:
        raise ConfigError("liveness interval", iv, "must be 0.1..3600 seconds")
    set_(cfg, "liveness_interval", float(iv))
    dead = cfg.liveness_dead
    if isinstance(dead, bool) or not isinstance(dead, int) or not 1 <= dead <= 1000:
        raise ConfigError("liveness dead", dead, "must be 1..1000 intervals")
    for hook in ("on_up", "on_down"):
        argv = getattr(cfg, hook)
        if isinstance(argv, str) or not isinstance(argv, list | tuple):
            raise ConfigError(hook, argv, "must be a list of words (argv, run without a shell)")
        if not all(isinstance(w, str) and w and "\0" not in w for w in argv):
            raise ConfigError(hook, argv, "must be a list of non-empty strings")
        if argv and not argv[0].startswith("/"):
            raise ConfigError(hook, argv[0], "the command must be an absolute path")
        set_(cfg, hook, tuple(argv))


def _known_fields(cls: type, data: dict[str, Any], what: str) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(what, key, "unknown option")
    return dict(data)


# -- ESP security associations (issue 9; l2tpv3/proto/esp.py) ----------------------------

# Algorithm names as `ip xfrm state` takes them, with their key lengths in bytes (AEAD
# keys carry the 4-byte salt at their end: RFC 4106 §8.1, RFC 7634 §2).
SA_AEAD_ALGS: dict[str, tuple[int, ...]] = {
    "rfc4106(gcm(aes))": (20, 28, 36),
    "rfc7539esp(chacha20,poly1305)": (36,),
}
SA_ENC_ALGS: dict[str, tuple[int, ...]] = {"cbc(aes)": (16, 24, 32)}
SA_AUTH_ALGS: dict[str, tuple[int, ...]] = {"hmac(sha256)": (32,), "hmac(sha1)": (20,)}
SA_MAX_REPLAY_WINDOW = 4096


class SaDir(StrEnum):
    IN = "in"
    OUT = "out"


class SecretKey:
    """Key bytes that never show: repr, str and format give only the length."""

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        self._raw = bytes(raw)

    def reveal(self) -> bytes:
        return self._raw

    def __len__(self) -> int:
        return len(self._raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(("SecretKey", len(self._raw)))

    def __repr__(self) -> str:
        return f"<key, {len(self._raw) * 8} bits>"

    __str__ = __repr__


def parse_key(field: str, value: object) -> SecretKey:
    """A key as `ip xfrm` writes it: 0x and hex digits (or bytes). Errors never echo it."""
    if isinstance(value, SecretKey):
        return value
    if isinstance(value, bytes):
        return SecretKey(value)
    if isinstance(value, str):
        text = "".join(value.split())
        if text[:2] in ("0x", "0X"):
            text = text[2:]
        try:
            if text:
                return SecretKey(bytes.fromhex(text))
        except ValueError:
            pass
    raise ConfigError(field, "(hidden)", "must be 0x followed by an even number of hex digits")


def _key_bits(lengths: tuple[int, ...]) -> str:
    return " or ".join(str(n * 8) for n in lengths)


@dataclass(frozen=True, slots=True)
class SaConfig:
    """``l2tpv3 add sa``: one direction of an ESP SA of one tunnel, as ``ip xfrm state``.

    Either ``aead`` (with ``key``), or ``enc`` and ``auth`` (with ``key`` and
    ``auth_key``). ``replay_window`` 0 turns the anti-replay check off (the kernel's
    default for manual keys). ``encap_sport``/``encap_dport``: ESP in UDP (RFC 3948,
    ``encap espinudp SPORT DPORT``). Keys are :class:`SecretKey`: they never show in
    repr, errors or :meth:`to_dict` unless asked for with ``keys=True``.
    """

    tunnel_id: int
    dir: SaDir
    spi: int
    key: SecretKey
    aead: str | None = None
    enc: str | None = None
    auth: str | None = None
    auth_key: SecretKey | None = None
    replay_window: int = 0
    esn: bool = False
    encap_sport: int | None = None
    encap_dport: int | None = None

    def __post_init__(self) -> None:
        check_id("tunnel_id", self.tunnel_id)
        object.__setattr__(self, "dir", check_enum("dir", self.dir, SaDir))
        spi = self.spi
        # RFC 4303 §2.1: 0 is never sent; 1..255 are reserved by IANA.
        if isinstance(spi, bool) or not isinstance(spi, int) or not 256 <= spi <= ID_MAX:
            raise ConfigError("spi", spi, "must be 256..4294967295 (RFC 4303 §2.1)")
        object.__setattr__(self, "key", parse_key("key", self.key))
        if self.auth_key is not None:
            object.__setattr__(self, "auth_key", parse_key("auth_key", self.auth_key))
        if self.aead is not None:
            if self.enc is not None or self.auth is not None or self.auth_key is not None:
                raise ConfigError("aead", self.aead, "cannot be combined with enc or auth")
            lengths = SA_AEAD_ALGS.get(self.aead)
            if lengths is None:
                raise ConfigError("aead", self.aead, f"must be one of {' | '.join(SA_AEAD_ALGS)}")
            if len(self.key) not in lengths:
                raise ConfigError(
                    "key",
                    f"{len(self.key) * 8} bits",
                    f"{self.aead} needs {_key_bits(lengths)} bits (key and 4-byte salt)",
                )
        else:
            if self.enc is None:
                raise MissingArgument("aead or enc")
            lengths = SA_ENC_ALGS.get(self.enc)
            if lengths is None:
                raise ConfigError("enc", self.enc, f"must be one of {' | '.join(SA_ENC_ALGS)}")
            if len(self.key) not in lengths:
                raise ConfigError(
                    "key",
                    f"{len(self.key) * 8} bits",
                    f"{self.enc} needs {_key_bits(lengths)} bits",
                )
            if self.auth is None:
                raise MissingArgument("auth")
            alengths = SA_AUTH_ALGS.get(self.auth)
            if alengths is None:
                raise ConfigError("auth", self.auth, f"must be one of {' | '.join(SA_AUTH_ALGS)}")
            if self.auth_key is None:
                raise MissingArgument("auth_key")
            if len(self.auth_key) not in alengths:
                raise ConfigError(
                    "auth_key",
                    f"{len(self.auth_key) * 8} bits",
                    f"{self.auth} needs {_key_bits(alengths)} bits",
                )
        rw = self.replay_window
        if isinstance(rw, bool) or not isinstance(rw, int) or not 0 <= rw <= SA_MAX_REPLAY_WINDOW:
            raise ConfigError("replay_window", rw, f"must be 0..{SA_MAX_REPLAY_WINDOW}")
        _check_bool("esn", self.esn)
        if (self.encap_sport is None) != (self.encap_dport is None):
            raise MissingArgument("encap_dport" if self.encap_dport is None else "encap_sport")
        if self.encap_sport is not None:
            check_port("encap_sport", self.encap_sport)
            check_port("encap_dport", self.encap_dport)

    @property
    def alg(self) -> str:
        """The AEAD or the encryption algorithm."""
        return self.aead if self.aead is not None else str(self.enc)

    @property
    def espinudp(self) -> bool:
        return self.encap_sport is not None

    def to_dict(self, keys: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"tunnel_id": self.tunnel_id, "dir": self.dir.value, "spi": self.spi}
        for name in ("aead", "enc", "auth"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if keys:
            out["key"] = "0x" + self.key.reveal().hex()
            if self.auth_key is not None:
                out["auth_key"] = "0x" + self.auth_key.reveal().hex()
        out["replay_window"] = self.replay_window
        out["esn"] = self.esn
        if self.encap_sport is not None:
            out["encap_sport"] = self.encap_sport
            out["encap_dport"] = self.encap_dport
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SaConfig:
        return cls(**_known_fields(cls, data, "sa"))


def check_private(path: str, what: str = "key file") -> None:
    """Refuse a file holding keys that group or others may read (one line)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise L2TPError(f"cannot read {what} {path}: {exc.strerror}") from None
    if stat.S_IMODE(mode) & 0o077:
        raise L2TPError(
            f"{what} {path} is readable by group or others (mode {stat.S_IMODE(mode):04o}): "
            f"chmod 600 {path}"
        )


def read_key_file(field: str, path: str) -> SecretKey:
    """KEY := @FILE: the file holds 0xHEX (as `l2tpv3 genkey` prints); it must be private."""
    check_private(path)
    try:
        with open(path) as fh:
            text = fh.read(4096)
    except OSError as exc:
        raise L2TPError(f"cannot read key file {path}: {exc.strerror}") from None
    return parse_key(field, text)
