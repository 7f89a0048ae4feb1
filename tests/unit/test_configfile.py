"""The daemon's TOML config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from l2tpv3.config import Encap
from l2tpv3.config.file import load_config
from l2tpv3.errors import L2TPError

SITE_A = """
[[tunnel]]
tunnel_id = 3000
peer_tunnel_id = 4000
encap = "udp"
local = "1.2.3.4"
remote = "5.6.7.8"
udp_sport = 5000
udp_dport = 6000
udp_csum = "on"

  [[tunnel.session]]
  session_id = 1000
  peer_session_id = 2000
  cookie = "014d3636deadbeef"

[[tunnel]]
tunnel_id = 2000
peer_tunnel_id = 2000
local = "fd00::6"
remote = "fd00::10"
encap = "ip"

[[session]]
tunnel_id = 2000
session_id = 2000
peer_session_id = 2000
name = "pw-c"
seq = "both"
"""


def test_site_file(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(SITE_A)
    tunnels, sessions = load_config(str(path))
    assert [t.tunnel_id for t in tunnels] == [3000, 2000]
    assert tunnels[0].udp_csum is True
    assert tunnels[1].encap is Encap.IP
    assert [(s.tunnel_id, s.session_id) for s in sessions] == [(3000, 1000), (2000, 2000)]
    assert sessions[0].cookie == bytes.fromhex("014d3636deadbeef")
    assert sessions[1].name == "pw-c"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "[[tunnel]]\ntunnel_id = 0\npeer_tunnel_id = 1\nlocal='1.1.1.1'\nremote='2.2.2.2'\n"
            "encap='ip'",
            'tunnel #1: invalid tunnel_id "0"',
        ),
        (
            "[[tunnel]]\ntunnel_id = 1\nlocal='1.1.1.1'\nremote='2.2.2.2'\nencap='ip'",
            'argument "peer_tunnel_id" is required',
        ),
        (
            "[[session]]\ntunnel_id = 1\nsession_id = 1\npeer_session_id = 1\nwat = 1",
            "unknown option",
        ),
        (
            "[[tunnel]]\ntunnel_id = 1\npeer_tunnel_id = 1\nlocal='1.1.1.1'\nremote='2.2.2.2'\n"
            "udp_sport = 1\nudp_dport = 1\nudp_csum = 'maybe'",
            'invalid udp_csum "maybe"',
        ),
        ("[routes]\nx = 1", "unknown section"),
        ("[[tunnel]\n", "config file"),
    ],
)
def test_errors_are_one_line_and_name_the_place(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(L2TPError) as info:
        load_config(str(path))
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(L2TPError, match="cannot read config file"):
        load_config(str(tmp_path / "nope.toml"))


def test_trunk_session_keys(tmp_path: Path) -> None:
    path = tmp_path / "trunk.toml"
    path.write_text(
        '[[tunnel]]\ntunnel_id = 1\npeer_tunnel_id = 2\nlocal = "10.0.0.1"\n'
        'remote = "10.0.0.2"\nudp_sport = 5000\nudp_dport = 5000\n'
        '[[tunnel.session]]\nsession_id = 5\npeer_session_id = 5\ntrunk = "trunk0"\nvlan = 5\n'
        '[[tunnel.session]]\nsession_id = 7\npeer_session_id = 7\ntrunk = "trunk0"\nvlan = 7\n'
        "vlan_pop = true\n"
    )
    _, sessions = load_config(str(path))
    assert [(s.trunk, s.vlan, s.vlan_pop) for s in sessions] == [
        ("trunk0", 5, False),
        ("trunk0", 7, True),
    ]
    path.write_text(path.read_text().replace("vlan = 7", "vlan = 4095"))
    with pytest.raises(L2TPError, match=r"1\.\.4094") as exc:
        load_config(str(path))
    assert "\n" not in str(exc.value)
