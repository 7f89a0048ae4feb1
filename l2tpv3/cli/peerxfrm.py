"""``peer-config --for linux``: the ``ip xfrm state`` and ``ip xfrm policy`` lines that make
a Linux kernel the far end of our ESP SAs (issue 9). Pure functions, config in, text out.

What is mirrored:

- each SA becomes one ``ip xfrm state`` on the far end with the same SPI, key and
  addresses (an xfrm state is named by destination, SPI and protocol, so both ends hold
  the same two states): our ``out`` SA is its inbound state (src our local, dst our
  remote), our ``in`` SA its outbound one;
- ``hmac(sha256)`` is written as ``auth-trunc ... 128``: plain ``auth`` would give the
  kernel's historical 96-bit truncation, not RFC 4868's 128 bits;
- two policies select exactly the tunnel's datagrams (``proto 17`` with the ports, or
  ``proto 115``: numeric, because the guest's busybox has no /etc/protocols); the
  ``dir in`` policy requires ESP, so the kernel drops plaintext L2TPv3 from us too;
- keys: only from ``--config FILE`` (the daemon never tells a key). Without them the
  lines carry ``$KEY_<spi>``-style shell variables to fill in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from l2tpv3.config import Encap, SaConfig, TunnelConfig
from l2tpv3.proto.esp import EspShape

__all__ = ["SaView", "esp_shapes", "view_of_config", "view_of_state", "xfrm_lines"]


@dataclass(frozen=True, slots=True)
class SaView:
    tunnel_id: int
    dir: str
    spi: int
    aead: str | None
    enc: str | None
    auth: str | None
    key: str | None  # 0xHEX, or None when unknown (from the daemon)
    auth_key: str | None
    replay_window: int
    esn: bool
    encap_sport: int | None
    encap_dport: int | None


def view_of_config(c: SaConfig) -> SaView:
    d = c.to_dict(keys=True)
    return SaView(c.tunnel_id, c.dir.value, c.spi, c.aead, c.enc, c.auth, d.get("key"),
                  d.get("auth_key"), c.replay_window, c.esn, c.encap_sport,
                  c.encap_dport)  # fmt: skip


def view_of_state(info: Mapping[str, object]) -> SaView:
    def opt_str(k: str) -> str | None:
        v = info.get(k)
        return v if isinstance(v, str) else None

    def opt_int(k: str) -> int | None:
        v = info.get(k)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    return SaView(opt_int("tunnel_id") or 0, str(info.get("dir")), opt_int("spi") or 0,
                  opt_str("aead"), opt_str("enc"), opt_str("auth"), None, None,
                  opt_int("replay_window") or 0, bool(info.get("esn")),
                  opt_int("encap_sport"), opt_int("encap_dport"))  # fmt: skip


def esp_shapes(sas: Sequence[SaView]) -> dict[tuple[int, str], EspShape]:
    """(tunnel_id, dir) -> the ESP overhead of that direction's SAs (the largest when
    several are in place, as during a key rotation)."""
    out: dict[tuple[int, str], EspShape] = {}
    for sa in sas:
        alg = sa.aead or sa.enc
        if alg is None:
            continue
        shape = EspShape.of(alg, sa.auth, sa.encap_dport is not None)
        key = (sa.tunnel_id, sa.dir)
        if key not in out or shape.worst > out[key].worst:
            out[key] = shape
    return out


def _alg_words(sa: SaView) -> str:
    key = sa.key or f"$KEY_{sa.spi:08x}"
    if sa.aead is not None:
        return f"aead '{sa.aead}' {key} 128"
    akey = sa.auth_key or f"$AUTH_KEY_{sa.spi:08x}"
    trunc = 128 if sa.auth == "hmac(sha256)" else 96
    return f"enc '{sa.enc}' {key} auth-trunc '{sa.auth}' {akey} {trunc}"


def xfrm_lines(tunnels: Sequence[TunnelConfig], sas: Sequence[SaView]) -> str:
    """The far end's ``ip xfrm`` lines for the SAs of ``tunnels`` ('' if none)."""
    out: list[str] = []
    for t in tunnels:
        mine = [s for s in sas if s.tunnel_id == t.tunnel_id]
        if not mine:
            continue
        plen = 32 if t.family == 4 else 128
        us, them = str(t.local), str(t.remote)
        out.append(f"# ESP of our tunnel {t.tunnel_id}: transport mode, mirrored SAs")
        if any(s.key is None for s in mine):
            out.append("# l2tpv3d never shows keys: set the $KEY_ variables, or use --config FILE")
        udp = next((s for s in mine if s.encap_sport is not None), None)
        if udp is not None:
            out.append(
                "# espinudp: the kernel takes ESP-in-UDP only on a socket with "
                f"UDP_ENCAP_ESPINUDP on port {udp.encap_dport} (an IKE daemon's)"
            )
        for s in mine:
            # our out SA: packets from us to them; our in SA: from them to us.
            src, dst = (us, them) if s.dir == "out" else (them, us)
            words = [f"ip xfrm state add src {src} dst {dst} proto esp spi 0x{s.spi:08x}",
                     "mode transport"]  # fmt: skip
            if s.replay_window:
                words.append(f"replay-window {s.replay_window}")
            if s.esn:
                words.append("flag esn")
            words.append(_alg_words(s))
            if s.encap_sport is not None:
                sport: int | None
                dport: int | None
                sport, dport = s.encap_sport, s.encap_dport
                if s.dir == "in":
                    sport, dport = s.encap_dport, s.encap_sport
                words.append(f"encap espinudp {sport} {dport} 0.0.0.0")
            out.append(" ".join(words))
        if t.encap is Encap.UDP:
            theirs = f"proto 17 sport {t.udp_dport} dport {t.udp_sport}"
            ours = f"proto 17 sport {t.udp_sport} dport {t.udp_dport}"
        else:
            theirs = ours = "proto 115"
        outs = [s for s in mine if s.dir == "in"]
        ins = [s for s in mine if s.dir == "out"]
        if outs:
            out.append(
                f"ip xfrm policy add src {them}/{plen} dst {us}/{plen} {theirs} dir out "
                f"tmpl src {them} dst {us} proto esp spi 0x{outs[0].spi:08x} mode transport"
            )
        if ins:
            out.append(
                f"ip xfrm policy add src {us}/{plen} dst {them}/{plen} {ours} dir in "
                f"tmpl src {us} dst {them} proto esp mode transport"
            )
    return "\n".join(out) + ("\n" if out else "")
