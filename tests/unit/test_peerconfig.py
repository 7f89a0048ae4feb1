"""``l2tpv3 peer-config``: the far end's configuration, mirrored from ours.

Checks the mirroring against the ip-l2tp man page's own site-A/site-B pair, a
hypothesis property (the linux output, read back through our grammar and mirrored
again, gives back what we started from), the QEMU and Cisco renderings and their
refusals, and the subcommand against a fake daemon. tests/netns/test_peerconfig.py
configures real daemons from what the subcommand prints.
"""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import ip_address as ip
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2tpv3.cli import grammar, peerconfig
from l2tpv3.cli import main as cli
from l2tpv3.cli.peerconfig import PeerConfigError
from l2tpv3.config import Encap, L2SpecType, SeqMode, SeqPolicy, SessionConfig, TunnelConfig
from l2tpv3.errors import ConfigError
from l2tpv3.proto.session import Session
from tests.data.seeds import IP_L2TP_MAN
from tests.unit.test_cli import SESSION_STATE, TUNNEL_STATE, FakeDaemon, one_error_line, run

# ip-l2tp(8), EXAMPLES: the two sites' lines (tests/data/seeds.py).
SITE_A = list(IP_L2TP_MAN.sections["EXAMPLES, site-A"])
SITE_B = list(IP_L2TP_MAN.sections["EXAMPLES, site-B"])


def configs(lines: list[str]) -> tuple[list[TunnelConfig], list[SessionConfig]]:
    """Read `ip l2tp add` lines (comments skipped) with our grammar."""
    tunnels, sessions = [], []
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        words = shlex.split(line)
        assert words[:3] == ["ip", "l2tp", "add"], line
        cmd = grammar.parse(words[2:])
        assert not cmd.warnings
        if cmd.tunnel is not None:
            tunnels.append(cmd.tunnel)
        else:
            assert cmd.session is not None
            sessions.append(cmd.session)
    return tunnels, sessions


def test_man_page_site_a_mirrors_to_site_b() -> None:
    ta, sa = configs(SITE_A)
    tb, sb = configs(SITE_B)
    assert peerconfig.mirror_tunnel(ta[0]) == tb[0]
    assert peerconfig.mirror_session(ta[0], sa[0]) == sb[0]
    text = peerconfig.linux(ta, sa)
    assert [ln for ln in text.splitlines() if not ln.startswith("#")] == SITE_B


def test_linux_output_is_only_ip_l2tp_lines_and_comments() -> None:
    t = TunnelConfig(1, 2, ip("fd00::1"), ip("fd00::2"), Encap.IP)
    s = SessionConfig(1, 10, 20, name="pw0", cookie=b"\x01\x02\x03\x04", seq=SeqMode.RECV,
                      reorder_timeout=50)  # fmt: skip
    text = peerconfig.linux([t], [s])
    lines = text.splitlines()
    assert all(ln.startswith(("# ", "ip l2tp add tunnel ", "ip l2tp add session ")) for ln in lines)
    assert (
        "ip l2tp add session name pw0 tunnel_id 2 session_id 20 peer_session_id 10 "
        "peer_cookie 01020304 seq both"
    ) in lines
    assert (
        "ip l2tp add tunnel tunnel_id 2 peer_tunnel_id 1 encap ip local fd00::2 remote fd00::1"
        in lines
    )
    # Extensions `ip l2tp` does not know are not printed, only explained.
    assert "reorder_timeout" not in "\n".join(ln for ln in lines if not ln.startswith("#"))
    assert any("reorder_timeout 50" in ln for ln in lines if ln.startswith("#"))


def test_mtu_comment_names_the_smaller_mtu() -> None:
    t = TunnelConfig(1, 2, ip("10.0.0.1"), ip("10.0.0.2"), Encap.UDP, udp_sport=1, udp_dport=2)
    # We send 8 cookie bytes, they send none: our MTU is 8 smaller.
    s = SessionConfig(1, 10, 20, cookie=bytes(range(8)))
    text = peerconfig.linux([t], [s])
    assert "far end 1446, ours 1438; set both to 1438" in text


def test_seq_mirroring() -> None:
    m = peerconfig.mirror_seq
    assert [m(x) for x in SeqMode] == [SeqMode.NONE, SeqMode.SEND, SeqMode.BOTH, SeqMode.BOTH]


def test_udp6_checksums_swap() -> None:
    t = TunnelConfig(1, 2, ip("fd00::1"), ip("fd00::2"), udp_sport=7, udp_dport=8,
                     udp6_csum_tx=False)  # fmt: skip
    far = peerconfig.mirror_tunnel(t)
    assert (far.udp6_csum_tx, far.udp6_csum_rx) == (True, False)
    assert (far.udp_sport, far.udp_dport) == (8, 7)


def test_wildcard_local_is_refused() -> None:
    # TunnelConfig itself refuses it now: no tunnel with a wildcard local can exist.
    with pytest.raises(ConfigError, match="wildcard"):
        TunnelConfig(1, 2, ip("0.0.0.0"), ip("10.0.0.2"), Encap.IP)


# -- the seq mirror, simulated with two sans-I/O sessions ------------------------------------

SIM_TUNNEL = TunnelConfig(1, 2, ip("10.0.0.1"), ip("10.0.0.2"), Encap.IP)
FRAME = bytes(14) + b"payload"


def converse(ours: SeqMode, theirs: SeqMode, first: str, rounds: int = 12) -> tuple[int, int]:
    """Frames delivered each way in the last half of an alternating exchange."""
    ours_cfg = SessionConfig(1, 10, 20, seq=ours)
    theirs_cfg = replace(peerconfig.mirror_session(SIM_TUNNEL, ours_cfg), seq=theirs)
    a = Session(SIM_TUNNEL, ours_cfg)
    b = Session(peerconfig.mirror_tunnel(SIM_TUNNEL), theirs_cfg)
    order = [(a, b), (b, a)] if first == "we" else [(b, a), (a, b)]
    got = {id(a): 0, id(b): 0}
    for i in range(rounds):
        for sender, receiver in order:
            frames = receiver.receive(sender.encapsulate(FRAME), float(i))
            if i >= rounds // 2:
                got[id(receiver)] += len(frames)
    return got[id(b)], got[id(a)]


@pytest.mark.parametrize("ours", list(SeqMode))
@pytest.mark.parametrize("first", ["we", "they"])
def test_mirrored_seq_settles(ours: SeqMode, first: str) -> None:
    """Whoever speaks first, the mirrored pair settles delivering every frame both ways.

    (With our `recv`, our S=0 packets are dropped until the far end has spoken once.)
    """
    assert converse(ours, peerconfig.mirror_seq(ours), first) == (6, 6)


def test_rejected_seq_mirrors_deadlock() -> None:
    """Why `send` is not mirrored to `recv`, nor `recv` to `send`."""
    # We send, the far end requires: its first S=0 packet switches us off for good.
    assert converse(SeqMode.SEND, SeqMode.RECV, "they")[0] == 0
    # We require, the far end only sends: our S=0 packet switches it off for good.
    assert converse(SeqMode.RECV, SeqMode.SEND, "we")[1] == 0


# -- the hypothesis property ----------------------------------------------------------------

ids = st.integers(1, 0xFFFFFFFF)
cookies = st.sampled_from([0, 4, 8]).flatmap(lambda n: st.binary(min_size=n, max_size=n))


@st.composite
def tunnel_and_sessions(draw: st.DrawFn) -> tuple[TunnelConfig, list[SessionConfig]]:
    family = draw(st.sampled_from([4, 6]))
    encap = draw(st.sampled_from(list(Encap)))
    if family == 4:
        addrs = st.integers(1, 0xDFFFFFFF).map(
            lambda n: f"{n >> 24}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
        )
    else:
        addrs = st.integers(1, 0xFEFF << 112).map(  # below ff00::/8, multicast
            lambda n: __import__("ipaddress").IPv6Address(n).compressed
        )
    udp = encap is Encap.UDP
    local = draw(addrs)
    t = TunnelConfig(
        tunnel_id=draw(ids), peer_tunnel_id=draw(ids), local=ip(local),
        remote=ip(draw(addrs.filter(lambda a: a != local))), encap=encap,
        udp_sport=draw(st.integers(1, 65535)) if udp else None,
        udp_dport=draw(st.integers(1, 65535)) if udp else None,
        udp_csum=draw(st.booleans()) if udp else False,
        udp6_csum_tx=draw(st.booleans()) if udp else True,
        udp6_csum_rx=draw(st.booleans()) if udp else True,
    )  # fmt: skip
    sessions = []
    for sid in draw(st.lists(ids, max_size=3, unique=True)):
        l2spec = draw(st.sampled_from(list(L2SpecType)))
        seqs = list(SeqMode) if l2spec is L2SpecType.DEFAULT else [SeqMode.NONE]
        sessions.append(
            SessionConfig(
                tunnel_id=t.tunnel_id, session_id=sid, peer_session_id=draw(ids),
                name=draw(st.none() | st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)),
                cookie=draw(cookies), peer_cookie=draw(cookies), l2spec_type=l2spec,
                seq=draw(st.sampled_from(seqs)),
                reorder_timeout=draw(st.sampled_from([0, 0, 100])),
                seq_policy=draw(st.sampled_from(list(SeqPolicy))),
            )
        )  # fmt: skip
    return t, sessions


@settings(max_examples=300, deadline=None)
@given(tunnel_and_sessions())
def test_linux_output_mirrors_back(case: tuple[TunnelConfig, list[SessionConfig]]) -> None:
    t, sessions = case
    if t.local.is_unspecified or t.remote.is_unspecified:
        return
    far_tunnels, far_sessions = configs(peerconfig.linux([t], sessions).splitlines())
    assert len(far_tunnels) == 1 and len(far_sessions) == len(sessions)
    far_t = far_tunnels[0]
    assert peerconfig.mirror_tunnel(far_t) == t
    for s, far_s in zip(sessions, far_sessions, strict=True):
        back = peerconfig.mirror_session(far_t, far_s)
        # What `ip l2tp` cannot say is not carried; `recv` comes back as `both`.
        expected = replace(s, reorder_timeout=0, seq_policy=SeqPolicy.KERNEL,
                           seq=SeqMode.BOTH if s.seq is SeqMode.RECV else s.seq)  # fmt: skip
        assert back == expected
        # And the linux output of the far end is ours again (up to those two fields).
        again_t, again_s = configs(peerconfig.linux([far_t], [far_s]).splitlines())
        assert again_t == [t]
        assert again_s == [expected]


# -- qemu -------------------------------------------------------------------------------------

UDP4 = TunnelConfig(3000, 4000, ip("10.1.1.1"), ip("10.1.1.2"), Encap.UDP, udp_sport=5000,
                    udp_dport=6000)  # fmt: skip
IP6 = TunnelConfig(1, 2, ip("fd00::1"), ip("fd00::2"), Encap.IP)


def test_qemu_udp_with_64_bit_cookies() -> None:
    s = SessionConfig(3000, 1000, 2000, cookie=bytes.fromhex("014d3636deadbeef"),
                      peer_cookie=bytes.fromhex("a1a2a3a4a5a6a7a8"))  # fmt: skip
    text, notes = peerconfig.qemu([UDP4], [s])
    assert text == (
        "-netdev l2tpv3,id=l2tpv3,src=10.1.1.2,dst=10.1.1.1,udp=on,srcport=6000,dstport=5000,"
        "txsession=1000,rxsession=2000,cookie64=on,txcookie=0xa1a2a3a4a5a6a7a8,"
        "rxcookie=0x014d3636deadbeef,counter=on,pincounter=on\n"
    )
    assert any("MTU" in n for n in notes)


def test_qemu_ip6_no_sublayer_32_bit_cookies() -> None:
    s = SessionConfig(1, 10, 20, cookie=b"\x01\x02\x03\x04", peer_cookie=b"\x05\x06\x07\x08",
                      l2spec_type=L2SpecType.NONE)  # fmt: skip
    text, _ = peerconfig.qemu([IP6], [s], netdev_id="n0")
    assert text == (
        "-netdev l2tpv3,id=n0,src=fd00::2,dst=fd00::1,ipv6=on,txsession=10,rxsession=20,"
        "txcookie=0x05060708,rxcookie=0x01020304,counter=off\n"
    )


def test_qemu_one_netdev_per_session() -> None:
    sessions = [SessionConfig(3000, 1, 2), SessionConfig(3000, 3, 4, seq=SeqMode.SEND)]
    text, notes = peerconfig.qemu([UDP4], sessions)
    lines = text.splitlines()
    assert [ln.split(",")[1] for ln in lines] == ["id=l2tpv3-0", "id=l2tpv3-1"]
    assert any("ignores our sequence numbers" in n for n in notes)


@pytest.mark.parametrize(
    ("tunnel", "session", "reason"),
    [
        (UDP4, SessionConfig(3000, 1, 2, cookie=b"abcd"), "both txcookie and rxcookie"),
        (UDP4, SessionConfig(3000, 1, 2, cookie=b"abcd", peer_cookie=b"abcdefgh"),
         "one cookie length"),
        (UDP4, SessionConfig(3000, 1, 2, seq=SeqMode.RECV), "never sends any"),
        (UDP4, SessionConfig(3000, 1, 2, seq=SeqMode.BOTH), "never sends any"),
        (TunnelConfig(1, 2, ip("fd00::1"), ip("fd00::2"), udp_sport=1, udp_dport=2,
                      udp6_csum_tx=False),
         SessionConfig(1, 1, 2), "zero-checksum"),
    ],
)  # fmt: skip
def test_qemu_refusals(tunnel: TunnelConfig, session: SessionConfig, reason: str) -> None:
    with pytest.raises(PeerConfigError, match=reason):
        peerconfig.qemu([tunnel], [session])


# -- cisco ------------------------------------------------------------------------------------

IP4 = TunnelConfig(7, 8, ip("192.0.2.1"), ip("198.51.100.1"), Encap.IP)


def test_cisco_manual_xconnect() -> None:
    s = SessionConfig(7, 1000, 2000, cookie=bytes.fromhex("014d3636deadbeef"),
                      peer_cookie=bytes.fromhex("a1a2a3a4"), seq=SeqMode.BOTH)  # fmt: skip
    text = peerconfig.cisco([IP4], [s])
    lines = text.splitlines()
    body = [ln for ln in lines if not ln.startswith("!")]
    assert body == [
        "pseudowire-class L2TPV3-1000",
        " encapsulation l2tpv3",
        " protocol none",
        " ip local interface Loopback0",
        " sequencing both",
        "interface GigabitEthernet0/0",
        " no ip address",
        " xconnect 192.0.2.1 2000 encapsulation l2tpv3 manual pw-class L2TPV3-1000",
        "  l2tp id 2000 1000",
        # The cookie they expect is the one we send; the low 32-bit word comes first.
        f"  l2tp cookie local 8 {0xDEADBEEF} {0x014D3636}",
        f"  l2tp cookie remote 4 {0xA1A2A3A4}",
    ]
    assert any("198.51.100.1" in ln for ln in lines if ln.startswith("!"))


def test_cisco_no_sublayer_no_sequencing() -> None:
    text = peerconfig.cisco([IP4], [SessionConfig(7, 1, 2, l2spec_type=L2SpecType.NONE)])
    assert "sequencing" not in text.replace("! ", "")
    assert "l2tp cookie" not in text


@given(cookie=st.sampled_from([4, 8]).flatmap(lambda n: st.binary(min_size=n, max_size=n)))
def test_cisco_cookie_words_give_back_the_wire_bytes(cookie: bytes) -> None:
    s = SessionConfig(7, 1, 2, cookie=cookie, l2spec_type=L2SpecType.NONE)
    [line] = [ln for ln in peerconfig.cisco([IP4], [s]).splitlines() if "cookie local" in ln]
    words = line.split()
    assert words[:4] == ["l2tp", "cookie", "local", str(len(cookie))]
    low, *high = (int(w) for w in words[4:])
    value = (high[0] << 32 | low) if high else low
    assert value.to_bytes(len(cookie), "big") == cookie


@pytest.mark.parametrize(
    ("tunnel", "session", "reason"),
    [
        (UDP4, SessionConfig(3000, 1, 2, l2spec_type=L2SpecType.NONE), "IP protocol 115 only"),
        (IP4, SessionConfig(7, 1, 2), "l2spec_type none"),
    ],
)
def test_cisco_refusals(tunnel: TunnelConfig, session: SessionConfig, reason: str) -> None:
    with pytest.raises(PeerConfigError, match=reason):
        peerconfig.cisco([tunnel], [session])


# -- the subcommand ---------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeDaemon]:
    # A Unix socket path must fit in 108 bytes; pytest's tmp_path may not.
    with tempfile.TemporaryDirectory(prefix="l2pc") as d:
        daemon = FakeDaemon(str(Path(d) / "d.sock"))
        daemon.answers["show_tunnels"] = {"ok": True, "result": [TUNNEL_STATE]}
        daemon.answers["show_sessions"] = {"ok": True, "result": [SESSION_STATE]}
        daemon.answers["show_sas"] = {"ok": True, "result": []}
        daemon.start()
        yield daemon
        daemon.stop()


def test_subcommand_reads_the_daemon(fake: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "-S", fake.path, "peer-config", "--for", "linux")
    assert (status, err) == (0, "")
    assert [ln for ln in out.splitlines() if not ln.startswith("#")] == [
        "ip l2tp add tunnel tunnel_id 2000 peer_tunnel_id 1000 encap udp local 2.2.2.2 "
        "remote 1.1.1.2 udp_sport 5000 udp_dport 6000",
        "ip l2tp add session tunnel_id 2000 session_id 4000 peer_session_id 3000",
    ]
    assert [r["op"] for r in fake.requests] == ["show_tunnels", "show_sessions", "show_sas"]


def test_subcommand_qemu_notes_on_stderr(
    fake: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "-S", fake.path, "peer-config", "--for=qemu", "--id", "n1")
    assert status == 0
    assert (
        out.startswith("-netdev l2tpv3,id=n1,src=2.2.2.2,dst=1.1.1.2,udp=on,")
        and out.count("\n") == 1
    )
    assert all(ln.startswith("# ") for ln in err.splitlines()) and err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tunnel_id", "5"], "nothing matches tunnel_id 5"),
        (["session_id", "9"], "nothing matches session_id 9"),
        (["tunnel_id", "x"], 'invalid tunnel_id "x"'),
        (["--for"], "needs a value"),
        (["bogus"], 'unknown option "bogus"'),
    ],
)
def test_subcommand_errors(
    fake: FakeDaemon, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    for_ = [] if argv == ["--for"] else ["--for", "linux"]
    status, out, err = run(capsys, "-S", fake.path, "peer-config", *for_, *argv)
    assert (status, out) == (2, "")
    assert message in one_error_line(err)


def test_subcommand_refusal_is_one_line(
    fake: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "-S", fake.path, "peer-config", "--for", "cisco")
    assert (status, out) == (2, "")
    assert "IP protocol 115 only" in one_error_line(err)


def test_subcommand_without_daemon(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, out, err = run(
        capsys, "-S", str(tmp_path / "none.sock"), "peer-config", "--for", "linux"
    )
    assert (status, out) == (1, "")
    one_error_line(err)


def test_subcommand_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "peer-config")[0] == 2
    status, out, err = run(capsys, "peer-config", "--help")
    assert (status, out) == (0, "") and "--for { linux | qemu | cisco | tshark }" in err
    assert "peer-config --for" in cli.USAGE


def test_subcommand_offline_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "site.toml"
    cfg.write_text(
        "[[tunnel]]\ntunnel_id = 1\npeer_tunnel_id = 2\nencap = 'ip'\nlocal = '10.0.0.1'\n"
        "remote = '10.0.0.2'\n[[tunnel.session]]\nsession_id = 5\npeer_session_id = 6\n"
        "l2spec_type = 'none'\n"
    )
    status, out, _ = run(capsys, "peer-config", "--for", "cisco", "--config", str(cfg))
    assert status == 0
    assert "  l2tp id 6 5\n" in out
    assert run(capsys, "peer-config", "--for", "linux", "--config", str(tmp_path / "no"))[0] == 2


def test_trunk_session_far_end_needs_the_man_pages_vlan_device() -> None:
    # ip-l2tp(8) VLAN example: l2tpeth0.5 on the far end, bridged with eth1.5.
    t = TunnelConfig(1, 2, ip("10.0.0.1"), ip("10.0.0.2"), Encap.UDP, udp_sport=1, udp_dport=2)
    s = SessionConfig(1, 10, 20, trunk="trunk0", vlan=5)
    lines = peerconfig.linux([t], [s]).splitlines()
    cmds = [ln for ln in lines if not ln.startswith("#")]
    assert cmds[1] == "ip l2tp add session name l2tp20 tunnel_id 2 session_id 20 peer_session_id 10"
    assert cmds[2:] == [
        "ip link add link l2tp20 name l2tp20.5 type vlan id 5",
        "ip link add brvlan5 type bridge",
        "ip link set l2tp20.5 master brvlan5",
        "ip link set l2tp20 up",
        "ip link set l2tp20.5 up",
        "ip link set brvlan5 up",
    ]
    # Our trunk words are ours alone: never in the far end's ip l2tp line.
    assert "trunk" not in cmds[1] and "vlan" not in cmds[1]


def test_trunk_pop_session_far_end_bridges_its_l2tpeth() -> None:
    t = TunnelConfig(1, 2, ip("10.0.0.1"), ip("10.0.0.2"), Encap.UDP, udp_sport=1, udp_dport=2)
    s = SessionConfig(1, 10, 4000000000, trunk="trunk0", vlan=4094, vlan_pop=True)
    cmds = [ln for ln in peerconfig.linux([t], [s]).splitlines() if not ln.startswith("#")]
    assert cmds[2:] == [
        "ip link add brvlan4094 type bridge",
        "ip link set l2tp4000000000 master brvlan4094",
        "ip link set l2tp4000000000 up",
        "ip link set brvlan4094 up",
    ]
    # Without pop the VLAN device's name would not fit IFNAMSIZ: a shorter one.
    s = replace(s, vlan_pop=False)
    text = peerconfig.linux([t], [s])
    assert "ip link add link l2tp4000000000 name l2tpv4094 type vlan id 4094" in text


def test_trunk_session_notes_for_qemu_and_cisco() -> None:
    t = TunnelConfig(1, 2, ip("10.0.0.1"), ip("10.0.0.2"), Encap.IP)
    s = SessionConfig(1, 10, 20, trunk="trunk0", vlan=5, l2spec_type=L2SpecType.NONE)
    _, notes = peerconfig.qemu([t], [s])
    assert any("travel tagged 5, the guest must send them tagged 5" in n for n in notes)
    text = peerconfig.cisco([t], [replace(s, vlan_pop=True)])
    assert "! our session 10 is VLAN 5 of our trunk trunk0 with pop" in text
