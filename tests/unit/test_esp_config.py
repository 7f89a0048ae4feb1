"""ESP configuration (issue 9): SaConfig, the `sa` command grammar, show, the TOML
[[sa]] tables, peer-config's ip xfrm lines, and that no key ever shows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from l2tpv3.cli import peerxfrm, sa
from l2tpv3.config import SaConfig, SecretKey, TunnelConfig
from l2tpv3.config.file import parse_sas
from l2tpv3.control.protocol import OPS, AddSa, DelSa, SaState, ShowSas, decode_request
from l2tpv3.errors import ConfigError, L2TPError, MissingArgument

GCM_KEY = "0x" + "ab" * 20
AUTH_KEY = "0x" + "cd" * 32


def _cfg(**kw: object) -> SaConfig:
    base: dict[str, object] = {
        "tunnel_id": 1,
        "dir": "out",
        "spi": 0x1000,
        "key": GCM_KEY,
        "aead": "rfc4106(gcm(aes))",
    }
    base.update(kw)
    return SaConfig(**base)  # type: ignore[arg-type]


def test_key_never_in_repr_to_dict_or_errors() -> None:
    c = _cfg()
    assert "abab" not in repr(c) and "abab" not in str(c.to_dict())
    assert c.to_dict(keys=True)["key"] == GCM_KEY
    assert repr(SecretKey(b"\x01" * 16)) == "<key, 128 bits>"
    for bad in ("0x" + "ab" * 19, "0xnothex" + "ab" * 10, "abab"):
        with pytest.raises(ConfigError) as err:
            _cfg(key=bad)
        assert "abab" not in str(err.value)


def test_validation_one_line_errors() -> None:
    with pytest.raises(ConfigError, match=r"must be 256\.\.4294967295"):
        _cfg(spi=5)
    with pytest.raises(ConfigError, match="must be one of"):
        _cfg(aead="gcm(aes)")
    with pytest.raises(MissingArgument, match="auth"):
        _cfg(aead=None, enc="cbc(aes)", key="0x" + "11" * 16)
    with pytest.raises(ConfigError, match="replay_window"):
        _cfg(replay_window=5000)
    with pytest.raises(MissingArgument, match="encap_dport"):
        _cfg(encap_sport=4500)
    cbc = _cfg(
        aead=None,
        enc="cbc(aes)",
        key="0x" + "11" * 16,
        auth="hmac(sha1)",
        auth_key="0x" + "22" * 20,
    )
    assert cbc.alg == "cbc(aes)"


def test_grammar_add_del_show(tmp_path: Path) -> None:
    kf = tmp_path / "k"
    kf.write_text(GCM_KEY + "\n")
    kf.chmod(0o600)
    req, warnings = sa.parse_sa(
        "add",
        [
            "tunnel_id",
            "7",
            "dir",
            "in",
            "spi",
            "0x2000",
            "aead",
            "rfc4106(gcm(aes))",
            "key",
            f"@{kf}",
            "replay_window",
            "64",
            "esn",
            "encap",
            "espinudp",
            "4500",
            "4501",
        ],
    )
    assert isinstance(req, AddSa) and warnings == []
    c = req.config
    assert (c.tunnel_id, c.dir.value, c.spi, c.replay_window, c.esn) == (7, "in", 0x2000, 64, True)
    assert (c.encap_sport, c.encap_dport) == (4500, 4501)
    # the request travels with the key, and reads back equal
    again = decode_request(json.loads(json.dumps(req.to_json())))
    assert isinstance(again, AddSa) and again.config == c
    req, warnings = sa.parse_sa(
        "add",
        [
            "tunnel_id",
            "7",
            "dir",
            "out",
            "spi",
            "4096",
            "aead",
            "rfc4106(gcm(aes))",
            "key",
            GCM_KEY,
        ],
    )
    assert warnings and "process list" in warnings[0]
    req, _ = sa.parse_sa(
        "add",
        ["tunnel_id", "7", "dir", "out", "spi", "4096", "aead", "rfc4106(gcm(aes))", "key", "-"],
        stdin=lambda: GCM_KEY,
    )
    assert isinstance(req, AddSa)
    req, _ = sa.parse_sa("del", ["tunnel_id", "7", "dir", "out", "spi", "4096"])
    assert req == DelSa(7, c.dir.__class__("out"), 4096)
    req, _ = sa.parse_sa("show", ["tunnel_id", "7"])
    assert req == ShowSas(7)
    for op in ("add_sa", "del_sa", "show_sas"):
        assert op in OPS


def test_group_readable_key_file_refused(tmp_path: Path) -> None:
    kf = tmp_path / "k"
    kf.write_text(GCM_KEY)
    kf.chmod(0o640)
    with pytest.raises(L2TPError, match="readable by group or others") as err:
        sa.parse_sa(
            "add",
            [
                "tunnel_id",
                "7",
                "dir",
                "out",
                "spi",
                "4096",
                "aead",
                "rfc4106(gcm(aes))",
                "key",
                f"@{kf}",
            ],
        )
    assert "\n" not in str(err.value) and "abab" not in str(err.value)


def test_show_and_json_never_show_keys() -> None:
    c = _cfg(replay_window=32)
    state = SaState(
        c.to_dict(),
        {"tx_packets": 3, "tx_bytes": 300, "tx_errors": 0, "rx_packets": 0, "rx_bytes": 0},
        {"auth_failed": 2},
    )
    text = sa.format_sas([state], stats=True)
    assert "spi 0x00001000" in text and "TX packets 3 bytes 300" in text and "auth_failed 2" in text
    js = sa.json_sas([SaState.from_json(state.to_json())], stats=True)
    assert "key" not in text + js and "abab" not in text + js


def test_toml_sas(tmp_path: Path) -> None:
    data = {
        "sa": [
            {
                "tunnel_id": 1,
                "dir": "out",
                "spi": 4096,
                "aead": "rfc4106(gcm(aes))",
                "key": GCM_KEY,
                "esn": "on",
            }
        ]
    }
    path = tmp_path / "c.toml"
    path.write_text("")
    path.chmod(0o644)
    with pytest.raises(L2TPError, match="readable by group or others"):
        parse_sas(data, str(path))
    path.chmod(0o600)
    (c,) = parse_sas(data, str(path))
    assert c.esn and c.key.reveal() == bytes.fromhex("ab" * 20)
    with pytest.raises(L2TPError, match="sa #1") as err:
        parse_sas({"sa": [{**data["sa"][0], "key": "0x12"}]}, str(path))
    assert "0x12" not in str(err.value)
    assert os.stat(path).st_mode & 0o077 == 0


def test_peer_config_xfrm_lines() -> None:
    t = TunnelConfig(1, 2, "192.0.2.1", "192.0.2.2", udp_sport=1701, udp_dport=1702)  # type: ignore[arg-type]
    out = _cfg(replay_window=32)
    inn = _cfg(
        dir="in",
        spi=0x2000,
        aead=None,
        enc="cbc(aes)",
        key="0x" + "11" * 16,
        auth="hmac(sha256)",
        auth_key=AUTH_KEY,
    )
    text = peerxfrm.xfrm_lines([t], [peerxfrm.view_of_config(out), peerxfrm.view_of_config(inn)])
    assert (
        "ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x00001000 mode transport "
        f"replay-window 32 aead 'rfc4106(gcm(aes))' {GCM_KEY} 128"
    ) in text
    assert f"auth-trunc 'hmac(sha256)' {AUTH_KEY} 128" in text
    assert (
        "ip xfrm policy add src 192.0.2.2/32 dst 192.0.2.1/32 proto 17 sport 1702 dport 1701 "
        "dir out tmpl src 192.0.2.2 dst 192.0.2.1 proto esp spi 0x00002000 mode transport"
    ) in text
    assert (
        "ip xfrm policy add src 192.0.2.1/32 dst 192.0.2.2/32 proto 17 sport 1701 dport 1702 "
        "dir in tmpl src 192.0.2.1 dst 192.0.2.2 proto esp mode transport"
    ) in text
    # From the daemon: no keys, placeholders instead.
    hidden = peerxfrm.xfrm_lines([t], [peerxfrm.view_of_state(out.to_dict())])
    assert "$KEY_00001000" in hidden and GCM_KEY not in hidden
    ip = TunnelConfig(1, 2, "2001:db8::1", "2001:db8::2", encap="ip")  # type: ignore[arg-type]
    text = peerxfrm.xfrm_lines([ip], [peerxfrm.view_of_config(_cfg(dir="in"))])
    assert "src 2001:db8::2/128 dst 2001:db8::1/128 proto 115 dir out" in text
