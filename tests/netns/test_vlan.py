"""Per-VLAN sessions on one trunk (docs/usage.md "Per-VLAN sessions"), on a host
without 8021q, both data paths:

    hosts on VLANs 5 and 7    t1: br0 [trk + trunk0]          t2: br5 [l2tp5 + eth5] -- h5 10.0.0.5
    (vlan_probe.py, tagged  --   trunk0 vlan 5 pop -> sess 5 ==udp==> l2tp5
     frames on "sw" eth0)         trunk0 vlan 7 pop -> sess 7 ==udp==> l2tp7
                                                              br7 [l2tp7 + eth7] -- h7 10.0.0.7

The near "hosts" send and answer tagged ARP / ICMP from a plain veth into the trunk's
bridge (scapy, AF_PACKET). The far side bridges untagged (``pop``), so its hosts are
plain interfaces. h5 and h7 share one subnet: VLAN 5 reaching h7 would show as an
answered ARP. VLAN 5 traffic never reaches VLAN 7's session: its counters stay and a
capture on the far l2tp7 sees none of it. Untagged frames and unmapped VIDs are the
tunnel's counted drops.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.netns import Daemon, Netns, require_root, veth, wait_until, workdir
from tests.support.progs import prog

pytestmark = pytest.mark.root

MAC5, MAC7 = "02:00:00:00:05:01", "02:00:00:00:07:01"


class Lab:
    def __init__(self, sw: Netns, t1: Netns, t2: Netns, h5: Netns, h7: Netns,
                 d1: Daemon, d2: Daemon) -> None:  # fmt: skip
        self.sw, self.t1, self.t2, self.h5, self.h7 = sw, t1, t2, h5, h7
        self.d1, self.d2 = d1, d2

    def ping(self, vid: int, mac: str, src: str, dst: str) -> list[str]:
        out = self.sw.run(*prog("vlan_probe"), "ping", "eth0", str(vid), mac, src, dst,
                          timeout=60).stdout  # fmt: skip
        return out.split("\n")[:2] if out.startswith("arp") else [out.strip()]

    def drops(self) -> dict[str, int]:
        (tun,) = self.d1.tunnels()
        return dict(tun["drops"])


@pytest.fixture(scope="module")
def lab(impl: str) -> Iterator[Lab]:
    require_root()
    with workdir() as wd:
        names = ("sw", "t1", "t2", "h5", "h7")
        sw, t1, t2, h5, h7 = (Netns(f"vlan-{n}") for n in names)
        daemons: list[Daemon] = []
        try:
            veth(sw, "eth0", t1, "trk")
            veth(t1, "wan", t2, "wan")
            veth(t2, "eth5", h5, "eth0")
            veth(t2, "eth7", h7, "eth0")
            h5.ip("addr", "add", "10.0.0.5/24", "dev", "eth0")
            h7.ip("addr", "add", "10.0.0.7/24", "dev", "eth0")
            t1.ip("addr", "add", "1.1.1.2/30", "dev", "wan")
            t2.ip("addr", "add", "1.1.1.1/30", "dev", "wan")
            for ns in (sw, t1, t2, h5, h7):
                ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")
            t1.ip("link", "add", "br0", "type", "bridge", "stp_state", "0")
            t1.ip("link", "set", "trk", "master", "br0")
            t1.ip("link", "set", "br0", "up")
            for v in ("5", "7"):
                t2.ip("link", "add", f"br{v}", "type", "bridge", "stp_state", "0")
                t2.ip("link", "set", f"eth{v}", "master", f"br{v}")
                t2.ip("link", "set", f"br{v}", "up")
            d1 = Daemon(t1, wd, impl=impl)
            daemons.append(d1)
            d2 = Daemon(t2, wd, impl=impl)
            daemons.append(d2)
            d1.cli("add", "tunnel", "tunnel_id", "1", "peer_tunnel_id", "2", "encap", "udp",
                   "local", "1.1.1.2", "remote", "1.1.1.1", "udp_sport", "6000",
                   "udp_dport", "5000")  # fmt: skip
            d2.cli("add", "tunnel", "tunnel_id", "2", "peer_tunnel_id", "1", "encap", "udp",
                   "local", "1.1.1.1", "remote", "1.1.1.2", "udp_sport", "5000",
                   "udp_dport", "6000")  # fmt: skip
            for v in ("5", "7"):
                d1.cli("add", "session", "tunnel_id", "1", "session_id", v,
                       "peer_session_id", v, "trunk", "trunk0", "vlan", v, "pop")  # fmt: skip
                d2.cli("add", "session", "tunnel_id", "2", "session_id", v,
                       "peer_session_id", v, "name", f"l2tp{v}")  # fmt: skip
                t2.ip("link", "set", f"l2tp{v}", "master", f"br{v}")
                t2.ip("link", "set", f"l2tp{v}", "up")
            t1.ip("link", "set", "trunk0", "master", "br0")
            t1.ip("link", "set", "trunk0", "up")
            yield Lab(sw, t1, t2, h5, h7, d1, d2)
        finally:
            logs = [d.stop() for d in daemons]
            for ns in (sw, t1, t2, h5, h7):
                ns.delete()
            for text in logs:
                assert "Traceback" not in text, text


def test_each_vlan_reaches_its_far_side(lab: Lab) -> None:
    assert lab.ping(5, MAC5, "10.0.0.50", "10.0.0.5")[1:] == ["pong vid 5"]
    assert lab.ping(7, MAC7, "10.0.0.70", "10.0.0.7")[1:] == ["pong vid 7"]
    # The answers come back on the VLAN they were asked on, from the far host's MAC.
    (arp5,) = lab.ping(5, MAC5, "10.0.0.50", "10.0.0.5")[:1]
    mac_h5 = json.loads(lab.h5.ip("-j", "link", "show", "eth0").stdout)[0]["address"]
    assert arp5 == f"arp {mac_h5} vid 5"


def test_vlans_do_not_reach_each_other(lab: Lab) -> None:
    before7 = lab.d1.session(7)["stats"]
    far7 = lab.t2.popen(*prog("vlan_probe"), "capture", "l2tp7", "14")
    try:
        assert far7.stdout is not None
        assert far7.stdout.readline().strip() == "ready"
        # h7's address asked on VLAN 5: only h5's side hears it, nobody answers.
        assert lab.ping(5, MAC5, "10.0.0.50", "10.0.0.7") == ["noarp"]
        after7 = lab.d1.session(7)["stats"]
        # The same capture sees VLAN 7's own traffic: it would have seen VLAN 5's.
        assert lab.ping(7, MAC7, "10.0.0.70", "10.0.0.7")[1:] == ["pong vid 7"]
        out, _ = far7.communicate(timeout=30)
    finally:
        if far7.poll() is None:
            far7.send_signal(signal.SIGINT)
            far7.wait()
        if far7.stdout is not None:
            far7.stdout.close()
    assert MAC5 not in out, out
    assert f"vid 0 {MAC7}" in out, out  # untagged on the far side: the session pops
    assert after7["tx_packets"] == before7["tx_packets"], (before7, after7)
    # ... and VLAN 5's session carried the three ARP requests.
    assert lab.d1.session(5)["stats"]["tx_packets"] >= 3


def test_untagged_and_unmapped_are_counted_drops(lab: Lab) -> None:
    before = lab.drops()
    sent = {s: lab.d1.session(s)["stats"]["tx_packets"] for s in (5, 7)}
    lab.sw.run(*prog("vlan_probe"), "send", "eth0", "0", "3")
    lab.sw.run(*prog("vlan_probe"), "send", "eth0", "9", "2")
    after = lab.drops()
    assert after["vlan_untagged"] - before["vlan_untagged"] == 3
    assert after["vlan_unmapped"] - before["vlan_unmapped"] == 2
    assert {s: lab.d1.session(s)["stats"]["tx_packets"] for s in (5, 7)} == sent


def test_show_gives_trunk_and_vid(lab: Lab) -> None:
    s5: dict[str, Any] = lab.d1.session(5)
    assert (s5["trunk"], s5["vlan"], s5["vlan_pop"], s5["interface"]) == (
        "trunk0",
        5,
        True,
        "trunk0",
    )
    text = lab.d1.cli("show", "session", "tunnel_id", "1", "session_id", "5").stdout
    assert "trunk trunk0 vlan 5 pop" in text, text


def test_refusals_change_nothing(lab: Lab) -> None:
    base = ["add", "session", "tunnel_id", "1", "peer_session_id", "9"]
    cases = [
        ([*base, "session_id", "9", "trunk", "trunk0", "vlan", "5"], "VLAN 5 of trunk trunk0"),
        ([*base, "session_id", "9", "trunk", "br0", "vlan", "9"], 'interface name "br0"'),
        ([*base, "session_id", "9", "trunk", "t9", "vlan", "4095"], "1..4094"),
        ([*base, "session_id", "9", "trunk", "t9", "vlan", "9", "name", "x9"], "no interface"),
        ([*base, "session_id", "9", "trunk", "t9"], "needs vlan"),
    ]
    for args, msg in cases:
        r = lab.d1.cli(*args, check=False)
        assert r.returncode == 2, (args, r)
        assert msg in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert sorted(s["session_id"] for s in lab.d1.sessions()) == [5, 7]
    assert lab.t1.run("ip", "link", "show", "t9", check=False).returncode != 0
    # A second tunnel may not share the trunk.
    lab.d1.cli("add", "tunnel", "tunnel_id", "3", "peer_tunnel_id", "3", "encap", "udp",
               "local", "1.1.1.2", "remote", "1.1.1.1", "udp_sport", "6001",
               "udp_dport", "5001")  # fmt: skip
    try:
        r = lab.d1.cli("add", "session", "tunnel_id", "3", "session_id", "30",
                       "peer_session_id", "30", "trunk", "trunk0", "vlan", "30",
                       check=False)  # fmt: skip
        assert r.returncode == 2 and "must be in one tunnel" in r.stderr, r
    finally:
        lab.d1.cli("del", "tunnel", "tunnel_id", "3")


def test_esp_seals_the_trunk_sessions(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A trunk's tunnel with SAs sends only ESP for every VLAN's session, on both data
    paths (the engine reads the trunk in its own loop: it must seal there too). The far
    end's inbound SA refuses clear text, so an answered ping is one that went sealed;
    the SA counters say so, and the plaintext drop stays 0."""
    keys = tmp_path_factory.mktemp("trunk-esp")
    k1, k2 = "0x" + "11" * 20, "0x" + "22" * 20
    sas = [(lab.d1, "1", "out", 0x501, k1), (lab.d2, "2", "in", 0x501, k1),
           (lab.d2, "2", "out", 0x502, k2), (lab.d1, "1", "in", 0x502, k2)]  # fmt: skip
    try:
        for i, (d, tid, way, spi, key) in enumerate(sas):
            kf = keys / f"k{i}"
            kf.write_text(key + "\n")
            kf.chmod(0o600)
            d.cli("add", "sa", "tunnel_id", tid, "dir", way, "spi", str(spi),
                  "aead", "rfc4106(gcm(aes))", "key", f"@{kf}")  # fmt: skip
        assert lab.ping(5, MAC5, "10.0.0.50", "10.0.0.5")[1:] == ["pong vid 5"]
        assert lab.ping(7, MAC7, "10.0.0.70", "10.0.0.7")[1:] == ["pong vid 7"]
        out = json.loads(lab.d1.cli("-j", "-s", "show", "sa", "tunnel_id", "1").stdout)
        by = {s["dir"]: s for s in out}
        assert by["out"]["stats"]["tx_packets"] >= 4, by
        assert by["in"]["stats"]["rx_packets"] >= 4, by
        far = json.loads(lab.d2.cli("-j", "-s", "show", "sa", "tunnel_id", "2").stdout)
        assert all(v == 0 for s in far for v in s["drops"].values()), far
        assert "ESP runs on the Python path" not in lab.d1.log_text()
    finally:
        for d, tid, way, spi, _ in sas:
            d.cli("del", "sa", "tunnel_id", tid, "dir", way, "spi", str(spi), check=False)


def test_trunk_goes_with_its_last_session(lab: Lab) -> None:
    # Last in the module: the lab's sessions go.
    lab.d1.cli("del", "session", "tunnel_id", "1", "session_id", "5")
    assert lab.t1.run("ip", "link", "show", "trunk0", check=False).returncode == 0
    lab.d1.cli("del", "session", "tunnel_id", "1", "session_id", "7")
    assert lab.t1.run("ip", "link", "show", "trunk0", check=False).returncode != 0


def test_trunk_mtu_is_followed_and_deleting_it_deletes_its_sessions(lab: Lab) -> None:
    for v in ("5", "7"):
        lab.d1.cli("add", "session", "tunnel_id", "1", "session_id", v,
                   "peer_session_id", v, "trunk", "trunk0", "vlan", v)  # fmt: skip
    lab.t1.ip("link", "set", "trunk0", "mtu", "1400")
    assert wait_until(lambda: all(lab.d1.session(s)["mtu"] == 1400 for s in (5, 7)))
    # `ip link del` on the trunk: as for an l2tpethN, its sessions go with it.
    lab.t1.ip("link", "del", "trunk0")
    assert wait_until(lambda: lab.d1.sessions() == [], timeout=10), lab.d1.sessions()
    assert "deleted with its trunk trunk0" in lab.d1.log_text() or (
        "deleted with its interface trunk0" in lab.d1.log_text()
    )
    # And the name is free again.
    lab.d1.cli("add", "session", "tunnel_id", "1", "session_id", "5",
               "peer_session_id", "5", "trunk", "trunk0", "vlan", "5")  # fmt: skip
    lab.d1.cli("del", "session", "tunnel_id", "1", "session_id", "5")
