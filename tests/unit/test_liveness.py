"""Liveness (issue 10 item 2): the sans-I/O state machine on a fake clock, the frames and
control messages it makes, and the per-session timestamps and control queue of both
implementations (``sansio``)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from ipaddress import ip_address
from pathlib import Path

import pytest
from scapy.layers.l2 import ARP, Ether

from l2tpv3.cli import grammar
from l2tpv3.cli.peerconfig import PeerConfigError, linux, qemu_netdev
from l2tpv3.config import Encap, LivenessMode, SessionConfig, TunnelConfig
from l2tpv3.config.file import parse_config
from l2tpv3.constants import CONTROL_MAX_LEN, CONTROL_QUEUE_SLOTS, LIVENESS_DEAD
from l2tpv3.control.protocol import AddSession, LivenessState, SessionState
from l2tpv3.daemon.liveness import run_hook
from l2tpv3.errors import ConfigError, L2TPError, MissingArgument, StateError
from l2tpv3.io.datapath import Implementation
from l2tpv3.proto.api import SessionAPI, TunnelAPI
from l2tpv3.proto.liveness import (
    ControlChannel,
    Liveness,
    arp_request,
    hello_message,
    is_arp_reply_to,
    liveness_mac,
    zlb_ack,
)
from tests.support.configs import UdpPorts

MAC = liveness_mac(1, 10)


def _reply_to(mac: bytes) -> bytes:
    """The far host's answer to our probe, built by scapy."""
    far = "02:00:00:00:00:01"
    arp = ARP(op=2, hwsrc=far, psrc="10.99.0.2", hwdst=mac.hex(":"), pdst="0.0.0.0")
    return bytes(Ether(dst=mac.hex(":"), src=far) / arp)


def machine(mode: LivenessMode, interval: float = 1.0, dead: int = 3) -> Liveness:
    return Liveness(mode, 100.0, interval, dead, MAC, "10.99.0.2")


# -- the state machine, on a fake clock -----------------------------------------------


def test_idle_goes_down_after_dead_intervals_and_up_at_the_first_sign() -> None:
    m = machine(LivenessMode.IDLE)
    assert m.up
    # Nothing received: still up just before interval x dead, down at it.
    assert m.poll(102.99).carrier is None
    assert m.next_deadline(102.99) == pytest.approx(103.0)
    step = m.poll(103.0)
    assert step.carrier is False and not m.up and m.transitions == 1
    # Down: polled every quarter interval; nothing new keeps it down, no second event.
    assert m.next_deadline(103.0) == pytest.approx(103.25)
    m.seen(0.0)
    assert m.poll(104.0).carrier is None
    m.seen(104.1)
    step = m.poll(104.2)
    assert step.carrier is True and m.up and m.transitions == 2
    assert m.last_seen == 104.1
    # The clock of `dead` now runs from the sign of life, not from the poll.
    assert m.next_deadline(104.2) == pytest.approx(107.1)
    assert m.poll(107.0).carrier is None
    assert m.poll(107.1).carrier is False


def test_signs_of_life_keep_it_up_and_stale_ones_count_for_nothing() -> None:
    m = machine(LivenessMode.IDLE, interval=0.5, dead=2)
    for t in range(1, 40):
        now = 100.0 + t * 0.25
        m.seen(now - 0.1)
        assert m.poll(now).carrier is None
    assert m.transitions == 0
    m.poll(200.0)
    assert not m.up
    m.seen(109.0)  # older than what was seen already: not a sign of life
    assert m.poll(200.5).carrier is None and not m.up


def test_probes_once_per_interval_up_or_down_without_bursts() -> None:
    m = machine(LivenessMode.ARP, interval=1.0, dead=3)
    frame = arp_request(MAC, "10.99.0.2")
    assert m.poll(100.0).frames == (frame,)  # the first at once
    assert m.poll(100.5).frames == ()
    assert m.next_deadline(100.5) == pytest.approx(101.0)
    assert m.poll(101.0).frames == (frame,)
    assert m.poll(102.0).frames == (frame,)
    step = m.poll(103.0)  # down at the same time as the fourth probe
    assert step.carrier is False and step.frames == (frame,)
    # A loop stalled for 10 s sends one probe, not ten.
    assert m.poll(113.2).frames == (frame,)
    assert m.poll(113.3).frames == ()
    assert m.next_deadline(113.3) == pytest.approx(113.55)  # down: a quarter interval


def test_hello_mode_asks_for_hellos_and_idle_probes_nothing() -> None:
    h = machine(LivenessMode.HELLO)
    step = h.poll(100.0)
    assert step.hello and step.frames == ()
    i = machine(LivenessMode.IDLE)
    assert not i.poll(100.0).hello and not i.probes
    with pytest.raises(ValueError, match="off"):
        machine(LivenessMode.OFF)


# -- frames and control messages ------------------------------------------------------


def test_the_mac_is_ours_locally_administered_and_stable() -> None:
    assert MAC[0] & 0x02 and not MAC[0] & 0x01  # locally administered, unicast
    assert liveness_mac(1, 10) == MAC
    assert len({liveness_mac(t, s) for t in range(1, 20) for s in range(1, 20)}) == 361
    assert (
        MAC.hex()
        == "02"
        + __import__("hashlib")
        .sha256((1).to_bytes(4, "big") + (10).to_bytes(4, "big"))
        .hexdigest()[:10]
    )


def test_the_arp_request_is_a_probe_for_the_address() -> None:
    # Read back by scapy, an independent parser.
    pkt = Ether(arp_request(MAC, "10.99.0.2"))
    assert pkt.dst == "ff:ff:ff:ff:ff:ff" and pkt.src == MAC.hex(":")
    arp = pkt[ARP]
    assert (arp.op, arp.hwsrc, arp.psrc, arp.pdst) == (1, MAC.hex(":"), "0.0.0.0", "10.99.0.2")
    assert len(bytes(pkt)) == 60
    reply = _reply_to(MAC)
    assert is_arp_reply_to(reply, MAC)
    assert not is_arp_reply_to(reply, liveness_mac(1, 11))
    assert not is_arp_reply_to(arp_request(MAC, "10.99.0.2"), MAC)


def test_hello_and_zlb_bytes() -> None:
    # RFC 3931 §3.2.1 header (T, L, S, Ver 3; length; control connection ID 0; Ns; Nr),
    # §5.4.1 Message Type AVP (M bit, length 8, vendor 0, type 0) of value 6 (§6.5).
    assert hello_message(1, 2).hex() == "c803001400000000000100028008000000000006"
    assert zlb_ack(0, 5).hex() == "c803000c0000000000000005"
    # Over IP (§4.1.1.2): after a session ID of 0.
    assert hello_message(0, 0, udp=False)[:4] == bytes(4)
    assert zlb_ack(0, 0, udp=False)[4:] == zlb_ack(0, 0)


@pytest.mark.parametrize("udp", [True, False])
def test_control_channel_answers_hellos_and_hears_acks(udp: bool) -> None:
    ch = ControlChannel(udp)
    assert ch.hello() == hello_message(0, 0, udp)
    assert ch.hellos_sent == 1 and ch.ns == 1
    # The peer's HELLO (Ns 7) is answered with a ZLB ACK (Nr 8) and counted.
    assert ch.receive(hello_message(7, 1, udp), 5.0) == [zlb_ack(1, 8, udp)]
    assert (ch.hellos_received, ch.acks_sent, ch.last_heard) == (1, 1, 5.0)
    assert ch.receive(zlb_ack(8, 1, udp), 6.0) == []
    assert (ch.acks_received, ch.last_heard) == (1, 6.0)
    # Anything else is counted and ignored, and no sign of life.
    sccrq = bytearray(hello_message(0, 0, udp))
    sccrq[-1] = 1
    for junk in (bytes(sccrq), b"\xc8\x03", b"\x00" * 40, hello_message(0, 0, udp)[:-3]):
        assert ch.receive(junk, 9.0) == []
    assert ch.ignored == 4 and ch.last_heard == 6.0
    assert ch.stats() == {"hellos_sent": 1, "hellos_received": 1, "acks_sent": 1,
                          "acks_received": 1, "control_ignored": 4}  # fmt: skip


# -- both implementations: timestamps and the control queue ---------------------------


def _pair(sansio: Implementation, encap: Encap = Encap.UDP) -> tuple[TunnelAPI, SessionAPI]:
    udp: UdpPorts = {"udp_sport": 1, "udp_dport": 2} if encap is Encap.UDP else {}
    cfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local=ip_address("10.0.0.1"),
                       remote=ip_address("10.0.0.2"), encap=encap, **udp)  # fmt: skip
    tunnel = sansio.tunnel(cfg, None)
    scfg = SessionConfig(tunnel_id=1, session_id=10, peer_session_id=10, peer_cookie=b"abcd")
    session = sansio.session(cfg, scfg)
    tunnel.add(session)
    return tunnel, session


def _data(frame: bytes, cookie: bytes = b"abcd") -> bytes:
    return b"\x00\x03\x00\x00" + (10).to_bytes(4, "big") + cookie + bytes(4) + frame


REPLY = _reply_to(MAC)


def test_last_rx_follows_packets_that_pass_the_cookie(sansio: Implementation) -> None:
    tunnel, session = _pair(sansio)
    assert session.last_rx == 0.0
    tunnel.receive(_data(bytes(60)), 5.0)
    assert session.last_rx == 5.0
    tunnel.receive(_data(bytes(60), cookie=b"xxxx"), 6.0)  # a stranger's guess
    assert session.last_rx == 5.0
    tunnel.receive(_data(bytes(60)), 7.5)
    assert session.last_rx == 7.5


def test_last_arp_is_only_a_reply_to_our_mac(sansio: Implementation) -> None:
    tunnel, session = _pair(sansio)
    tunnel.receive(_data(REPLY), 1.0)
    assert session.last_arp == 0.0  # not watching
    session.watch_arp(MAC)
    other = bytes(Ether(dst="02:00:00:00:00:09") / ARP(op=2, hwdst="02:00:00:00:00:09"))
    for frame, now in ((other, 2.0), (arp_request(MAC, "10.99.0.2"), 3.0), (bytes(60), 4.0)):
        _, frames = tunnel.receive(_data(frame), now)
        assert len(frames) == 1  # delivered all the same
    assert session.last_arp == 0.0
    _, frames = tunnel.receive(_data(REPLY), 5.0)
    assert session.last_arp == 5.0 and bytes(frames[0]) == REPLY
    session.watch_arp(b"")
    tunnel.receive(_data(REPLY), 6.0)
    assert session.last_arp == 5.0
    with pytest.raises(ValueError, match="6 bytes"):
        session.watch_arp(b"\x02\x00")


@pytest.mark.parametrize("encap", list(Encap))
def test_control_messages_are_queued_for_the_daemon(sansio: Implementation, encap: Encap) -> None:
    tunnel, session = _pair(sansio, encap)
    udp = encap is Encap.UDP
    hello = hello_message(3, 0, udp)
    assert tunnel.take_control() == []
    assert tunnel.receive(hello, 1.0) == (None, [])
    # Still never data: counted as a control message as before.
    assert tunnel.drops["control_message"] == 1
    assert tunnel.take_control() == [hello]
    assert tunnel.take_control() == []
    # Bounded: CONTROL_QUEUE_SLOTS kept, longer ones not at all (still counted).
    big = hello + bytes(CONTROL_MAX_LEN)
    tunnel.receive(big, 2.0)
    for i in range(CONTROL_QUEUE_SLOTS + 3):
        tunnel.receive(hello_message(i, 0, udp), 2.0)
    got = tunnel.take_control()
    assert got == [hello_message(i, 0, udp) for i in range(CONTROL_QUEUE_SLOTS)]
    assert tunnel.drops["control_message"] == 2 + CONTROL_QUEUE_SLOTS + 3
    assert session.last_rx == 0.0


# -- configuration, grammar, control socket, peer-config ------------------------------


def _words(extra: str) -> list[str]:
    return ["add", "session", "tunnel_id", "1", "session_id", "10", "peer_session_id", "10",
            *extra.split()]  # fmt: skip


def test_grammar_and_round_trip() -> None:
    cfg = grammar.parse(_words("liveness arp 10.99.0.2 interval 0.5 dead 4")).session
    assert cfg is not None
    assert (cfg.liveness, cfg.liveness_addr, cfg.liveness_interval, cfg.liveness_dead) == (
        LivenessMode.ARP, "10.99.0.2", 0.5, 4)  # fmt: skip
    assert grammar.parse(grammar.argv_for(cfg)).session == cfg
    hello = grammar.parse(_words("liveness hello")).session
    assert hello is not None and hello.liveness_dead == LIVENESS_DEAD
    plain = grammar.parse(_words("")).session
    assert plain is not None and plain.liveness is LivenessMode.OFF
    assert "liveness" not in grammar.argv_for(plain)


@pytest.mark.parametrize(
    ("extra", "error", "text"),
    [
        ("liveness arp", grammar.UsageError, "needs a value"),
        ("liveness arp 2001:db8::1", ConfigError, "IPv4"),
        ("liveness arp 224.0.0.1", ConfigError, "unicast"),
        ("liveness bfd", ConfigError, "off | idle | arp | hello"),
        ("interval 2", grammar.UsageError, "needs"),
        ("liveness idle interval 0", ConfigError, "0.1..3600"),
        ("liveness idle interval x", ConfigError, "seconds"),
        ("liveness idle dead 0", ConfigError, "1..1000"),
    ],
)
def test_grammar_errors_are_one_line(extra: str, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text) as info:
        grammar.parse(_words(extra))
    assert "\n" not in str(info.value)


def test_config_file_hooks_and_checks(tmp_path: Path) -> None:
    base = {"tunnel_id": 1, "session_id": 10, "peer_session_id": 10}
    _, sessions = parse_config({"session": [{**base, "liveness": "arp 10.99.0.2",
                                             "on_down": ["/sbin/ifup", "lan"]}]})  # fmt: skip
    s = sessions[0]
    assert (s.liveness, s.liveness_addr, s.on_down, s.on_up) == (
        LivenessMode.ARP, "10.99.0.2", ("/sbin/ifup", "lan"), ())  # fmt: skip
    for bad, text in (
        ({"liveness": "arp"}, "liveness arp ADDR"),
        ({"liveness": "idle", "liveness_addr": "10.0.0.1"}, "only for liveness arp"),
        ({"on_up": "/sbin/ifup lan"}, "list of words"),
        ({"on_up": ["ifup", "lan"]}, "absolute path"),
        ({"on_up": ["/sbin/ifup", ""]}, "non-empty"),
        ({"liveness": "idle", "liveness_dead": True}, "1..1000"),
    ):
        with pytest.raises(L2TPError, match=text):
            parse_config({"session": [{**base, **bad}]})
    with pytest.raises(MissingArgument):
        SessionConfig(1, 10, 10, liveness=LivenessMode.ARP)


def test_the_control_socket_never_takes_hooks() -> None:
    cfg = SessionConfig(1, 10, 10, liveness=LivenessMode.IDLE, on_down=("/bin/true",))
    msg = json.loads(json.dumps(AddSession(cfg).to_json()))
    with pytest.raises(StateError, match="config file only"):
        AddSession.from_json(msg)
    msg["config"]["on_down"] = []
    assert AddSession.from_json(msg).config.on_down == ()


def test_state_record_round_trip() -> None:
    cfg = SessionConfig(1, 10, 10, liveness=LivenessMode.HELLO)
    live = LivenessState("down", 3.5, None, 1, None, {"hellos_sent": 4})
    state = SessionState(cfg, "l2tpeth0", 1, 1446, False, False, {}, None, liveness=live)
    back = SessionState.from_json(json.loads(json.dumps(state.to_json())))
    assert back.liveness == live
    assert (
        SessionState.from_json(
            json.loads(
                json.dumps(SessionState(cfg, "x", 1, None, False, False, {}, None).to_json())
            )
        ).liveness
        is None
    )


def test_peer_config_refuses_hello_for_linux() -> None:
    t = TunnelConfig(1, 2, ip_address("10.0.0.1"), ip_address("10.0.0.2"), udp_sport=5000,
                     udp_dport=5000)  # fmt: skip
    with pytest.raises(PeerConfigError, match="INTEROPERABILITY"):
        linux([t], [SessionConfig(1, 10, 10, liveness=LivenessMode.HELLO)])
    with pytest.raises(PeerConfigError, match="HELLO"):
        qemu_netdev(t, SessionConfig(1, 10, 10, liveness=LivenessMode.HELLO), "n0")
    text = linux([t], [SessionConfig(1, 10, 10, liveness=LivenessMode.ARP,
                                     liveness_addr="10.99.0.2")])  # fmt: skip
    assert "answers our ARP probes" in text and "liveness" not in text.splitlines()[-1]


# -- hooks ----------------------------------------------------------------------------


def test_hook_gets_its_environment_and_is_killed_on_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "env"
    script = f"import os; open({str(out)!r}, 'w').write(os.environ['IFNAME'] + ' ' + " \
             "os.environ['SESSION_ID']); raise SystemExit(3)"  # fmt: skip
    caplog.set_level("INFO", logger="l2tpv3d")
    asyncio.run(run_hook((sys.executable, "-c", script), {"IFNAME": "l2tpeth0",
                "SESSION_ID": "10"}, "hook", 10.0))  # fmt: skip
    assert out.read_text() == "l2tpeth0 10"
    assert "exited with status 3" in caplog.text
    t0 = time.monotonic()
    asyncio.run(run_hook((sys.executable, "-c", "import time; time.sleep(30)"), {}, "slow", 0.5))
    assert time.monotonic() - t0 < 10
    assert "killed after 0.5 s" in caplog.text
    asyncio.run(run_hook(("/nonexistent/hook",), {}, "missing", 1.0))
    assert "cannot run /nonexistent/hook" in caplog.text
