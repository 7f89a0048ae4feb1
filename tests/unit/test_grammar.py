"""The ``ip l2tp`` grammar: seed command lines, aliases, defaults, errors, round trip."""

from __future__ import annotations

import ipaddress
import random
import shlex
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2tpv3.cli.grammar import (
    Command,
    HelpRequested,
    UsageError,
    argv_for,
    matches,
    parse,
    parse_u32,
)
from l2tpv3.config import Encap, L2SpecType, SeqMode, SeqPolicy, SessionConfig, TunnelConfig
from l2tpv3.errors import ConfigError, L2TPError, MissingArgument
from tests.data.seeds import all_lines


def words(line: str) -> list[str]:
    """A seed line without its "ip l2tp" prefix, split as a shell would."""
    argv = shlex.split(line)
    assert argv[:2] == ["ip", "l2tp"]
    return argv[2:]


def parse_line(line: str) -> Command:
    return parse(line.split())


SESSION_ARGV = ["add", "session", "tid", "1", "sid", "2", "psid", "3"]


def tunnel(tid: int, ptid: int, local: str, remote: str, **kw: Any) -> TunnelConfig:
    addresses = ipaddress.ip_address(local), ipaddress.ip_address(remote)
    return TunnelConfig(tid, ptid, *addresses, **kw)


# ---------------------------------------------------------------------------------------
# Every `ip l2tp` line of the seed documents (tests/data/seeds.py), with what it must
# parse into.

SEED_LINES: list[tuple[str, Command]] = [
    # ip-l2tp-man.txt (the EXAMPLES section; the "\" continuations joined)
    (
        "ip l2tp add tunnel tunnel_id 3000 peer_tunnel_id 4000 encap udp local 1.2.3.4 "
        "remote 5.6.7.8 udp_sport 5000 udp_dport 6000",
        Command(
            "add",
            "tunnel",
            tunnel=tunnel(3000, 4000, "1.2.3.4", "5.6.7.8", udp_sport=5000, udp_dport=6000),
            tunnel_id=3000,
        ),
    ),
    (
        "ip l2tp add session tunnel_id 3000 session_id 1000 peer_session_id 2000",
        Command(
            "add",
            "session",
            session=SessionConfig(3000, 1000, 2000),
            tunnel_id=3000,
            session_id=1000,
        ),
    ),
    (
        "ip l2tp add tunnel tunnel_id 4000 peer_tunnel_id 3000 encap udp local 5.6.7.8 "
        "remote 1.2.3.4 udp_sport 6000 udp_dport 5000",
        Command(
            "add",
            "tunnel",
            tunnel=tunnel(4000, 3000, "5.6.7.8", "1.2.3.4", udp_sport=6000, udp_dport=5000),
            tunnel_id=4000,
        ),
    ),
    (
        "ip l2tp add session tunnel_id 4000 session_id 2000 peer_session_id 1000",
        Command(
            "add",
            "session",
            session=SessionConfig(4000, 2000, 1000),
            tunnel_id=4000,
            session_id=2000,
        ),
    ),
    # linux-l2tp-ethernet-pseudowires.md (tun01, then tun02)
    (
        "ip l2tp add tunnel tunnel_id 1000 peer_tunnel_id 2000 encap udp local 1.1.1.2 "
        "remote 2.2.2.2 udp_sport 6000 udp_dport 5000",
        Command(
            "add",
            "tunnel",
            tunnel=tunnel(1000, 2000, "1.1.1.2", "2.2.2.2", udp_sport=6000, udp_dport=5000),
            tunnel_id=1000,
        ),
    ),
    (
        "ip l2tp add session tunnel_id 1000 session_id 3000 peer_session_id 4000",
        Command(
            "add",
            "session",
            session=SessionConfig(1000, 3000, 4000),
            tunnel_id=1000,
            session_id=3000,
        ),
    ),
    ("ip l2tp show tunnel", Command("show", "tunnel")),
    ("ip l2tp show session", Command("show", "session")),
    (
        "ip l2tp add tunnel tunnel_id 2000 peer_tunnel_id 1000 encap udp local 2.2.2.2 "
        "remote 1.1.1.2 udp_sport 5000 udp_dport 6000",
        Command(
            "add",
            "tunnel",
            tunnel=tunnel(2000, 1000, "2.2.2.2", "1.1.1.2", udp_sport=5000, udp_dport=6000),
            tunnel_id=2000,
        ),
    ),
    (
        "ip l2tp add session tunnel_id 2000 session_id 4000 peer_session_id 3000",
        Command(
            "add",
            "session",
            session=SessionConfig(2000, 4000, 3000),
            tunnel_id=2000,
            session_id=4000,
        ),
    ),
    # p2mp-layer2-over-layer3-ro.txt (gw-a, gw-b, then the IP-encap tunnel gw-b/gw-c)
    (
        "ip l2tp add tunnel local 10.200.100.2 remote 10.200.100.6 tunnel_id 1000 "
        "peer_tunnel_id 1000 encap udp udp_sport 5001 udp_dport 6001",
        Command(
            "add",
            "tunnel",
            tunnel=tunnel(
                1000, 1000, "10.200.100.2", "10.200.100.6", udp_sport=5001, udp_dport=6001
            ),
            tunnel_id=1000,
        ),
    ),
    (
        "ip l2tp add session tunnel_id 1000 session_id 1000 peer_session_id 1000",
        Command(
            "add",
            "session",
            session=SessionConfig(1000, 1000, 1000),
            tunnel_id=1000,
            session_id=1000,
        ),
    ),
    (
        "ip l2tp add tunnel local 10.200.100.6 remote 10.200.100.2 tunnel_id 1000 "
        "peer_tunnel_id 1000 encap udp udp_sport 6001 udp_dport 5001",
        Command(
            "add",
            "tunnel",
            tunnel=tunnel(
                1000, 1000, "10.200.100.6", "10.200.100.2", udp_sport=6001, udp_dport=5001
            ),
            tunnel_id=1000,
        ),
    ),
    (
        "ip l2tp add tunnel tunnel_id 2000 peer_tunnel_id 2000 local 10.200.100.6 "
        "remote 10.200.100.10 encap ip",
        Command(
            "add",
            "tunnel",
            tunnel=tunnel(2000, 2000, "10.200.100.6", "10.200.100.10", encap=Encap.IP),
            tunnel_id=2000,
        ),
    ),
    (
        "ip l2tp add session tunnel_id 2000 session_id 2000 peer_session_id 2000",
        Command(
            "add",
            "session",
            session=SessionConfig(2000, 2000, 2000),
            tunnel_id=2000,
            session_id=2000,
        ),
    ),
    (
        "ip l2tp add tunnel tunnel_id 2000 peer_tunnel_id 2000 local 10.200.100.10 "
        "remote 10.200.100.6 encap ip",
        Command(
            "add",
            "tunnel",
            tunnel=tunnel(2000, 2000, "10.200.100.10", "10.200.100.6", encap=Encap.IP),
            tunnel_id=2000,
        ),
    ),
]


@pytest.mark.parametrize(("line", "expected"), SEED_LINES, ids=[s for s, _ in SEED_LINES])
def test_seed_lines(line: str, expected: Command) -> None:
    assert parse(words(line)) == expected


def test_seed_lines_are_every_line_of_the_seeds() -> None:
    """SEED_LINES covers the seed documents' lines (tests/data/seeds.py), and no more."""
    assert all_lines()
    assert {line for line, _ in SEED_LINES} == all_lines()


# ---------------------------------------------------------------------------------------
# Verbs, aliases, defaults.


@pytest.mark.parametrize("verb", ["a", "ad", "add"])
def test_add_prefixes(verb: str) -> None:
    assert parse([verb, "session", "tid", "1", "sid", "2", "psid", "3"]).action == "add"


@pytest.mark.parametrize("verb", ["d", "de", "del", "dele", "delete"])
def test_del_prefixes(verb: str) -> None:
    assert parse([verb, "tunnel", "tunnel_id", "7"]) == Command("del", "tunnel", tunnel_id=7)


@pytest.mark.parametrize("verb", ["s", "sh", "show", "l", "ls", "lst", "li", "list"])
def test_show_prefixes(verb: str) -> None:
    assert parse([verb, "tunnel"]) == Command("show", "tunnel")


@pytest.mark.parametrize("verb", ["deleted", "shows", "x", "", "lists", "adds"])
def test_unknown_verb(verb: str) -> None:
    with pytest.raises(UsageError, match=f'command "{verb}" is unknown'):
        parse([verb, "tunnel"])


def test_matches() -> None:
    assert matches("del", "delete")
    assert not matches("", "delete")
    assert not matches("deletex", "delete")


def test_aliases() -> None:
    cmd = parse_line("add tunnel tid 10 ptid 20 local ::1 remote ::2 encap ip")
    assert cmd.tunnel == tunnel(10, 20, "::1", "::2", encap=Encap.IP)
    cmd = parse_line("add session tid 10 sid 11 psid 12")
    assert cmd.session == SessionConfig(10, 11, 12)


def test_tunnel_defaults() -> None:
    cmd = parse_line(
        "add tunnel tunnel_id 1 peer_tunnel_id 2 local 1.1.1.1 remote 2.2.2.2 "
        "udp_sport 1 udp_dport 2"
    )
    t = cmd.tunnel
    assert t is not None
    assert t.encap is Encap.UDP
    assert (t.udp_csum, t.udp6_csum_tx, t.udp6_csum_rx) == (False, True, True)
    assert cmd.warnings == ()


def test_session_defaults() -> None:
    s = parse_line("add session tunnel_id 1 session_id 2 peer_session_id 3").session
    assert s is not None
    assert s.name is None
    assert s.cookie == s.peer_cookie == b""
    assert s.l2spec_type is L2SpecType.DEFAULT
    assert s.seq is SeqMode.NONE
    assert s.reorder_timeout == 0
    assert s.seq_policy is SeqPolicy.KERNEL


def test_every_session_option() -> None:
    cmd = parse_line(
        "add session name pw0 tunnel_id 1 session_id 2 peer_session_id 3 "
        "cookie 0123456789ABCDEF peer_cookie deadbeef l2spec_type DEFAULT seq Both "
        "reorder_timeout 250 seq_policy RFC3931"
    )
    assert cmd.session == SessionConfig(
        1,
        2,
        3,
        name="pw0",
        cookie=bytes.fromhex("0123456789abcdef"),
        peer_cookie=bytes.fromhex("deadbeef"),
        l2spec_type=L2SpecType.DEFAULT,
        seq=SeqMode.BOTH,
        reorder_timeout=250,
        seq_policy=SeqPolicy.RFC3931,
    )
    assert cmd.to_request() == {"op": "add_session", "config": cmd.session.to_dict()}


def test_every_tunnel_option() -> None:
    cmd = parse_line(
        "add tunnel remote 2001:db8::2 local 2001:db8::1 tunnel_id 0x10 peer_tunnel_id 010 "
        "encap udp udp_sport 0x6a5 udp_dport 1701 udp_csum on udp6_csum_tx off "
        "udp6_csum_rx off"
    )
    assert cmd.tunnel == tunnel(
        16,
        8,
        "2001:db8::1",
        "2001:db8::2",
        udp_sport=1701,
        udp_dport=1701,
        udp_csum=True,
        udp6_csum_tx=False,
        udp6_csum_rx=False,
    )
    assert cmd.tunnel_id == 16
    assert cmd.to_request() == {"op": "add_tunnel", "config": cmd.tunnel.to_dict()}


def test_l2spec_none_case_insensitive() -> None:
    s = parse_line("add session tid 1 sid 2 psid 3 l2spec_type NoNe").session
    assert s is not None and s.l2spec_type is L2SpecType.NONE


@pytest.mark.parametrize(
    ("seqs", "mode"),
    [
        (["none"], SeqMode.NONE),
        (["send"], SeqMode.SEND),
        (["RECV"], SeqMode.RECV),
        (["both"], SeqMode.BOTH),
        # iproute2 keeps two flags: "send" then "recv" sets both, "none" clears them.
        (["send", "recv"], SeqMode.BOTH),
        (["both", "none", "recv"], SeqMode.RECV),
    ],
)
def test_seq(seqs: list[str], mode: SeqMode) -> None:
    argv = SESSION_ARGV.copy()
    for seq in seqs:
        argv += ["seq", seq]
    s = parse(argv).session
    assert s is not None and s.seq is mode


def test_offsets_are_ignored_with_a_warning() -> None:
    cmd = parse_line("add session tid 1 sid 2 psid 3 offset 8 peer_offset 16")
    assert cmd.session == SessionConfig(1, 2, 3)
    assert cmd.warnings == ('Ignoring option "offset"', 'Ignoring option "peer_offset"')


def test_add_session_ignores_peer_tunnel_id_and_tunnel_options() -> None:
    cmd = parse_line("add session tid 1 ptid 9 sid 2 psid 3 encap ip udp_sport 5")
    assert cmd.session == SessionConfig(1, 2, 3)


def test_ip_encap_drops_udp_options() -> None:
    cmd = parse_line(
        "add tunnel tid 1 ptid 2 local 1.1.1.1 remote 2.2.2.2 encap ip "
        "udp_sport 5 udp_dport 6 udp_csum on"
    )
    assert cmd.tunnel == tunnel(1, 2, "1.1.1.1", "2.2.2.2", encap=Encap.IP)


def test_kind_word_anywhere() -> None:
    cmd = parse_line("add tid 1 ptid 2 local 1.1.1.1 remote 2.2.2.2 encap ip tunnel")
    assert cmd.tunnel == tunnel(1, 2, "1.1.1.1", "2.2.2.2", encap=Encap.IP)


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("local 1.1.1.1 remote 1.1.1.1 encap ip", "remote"),
        ("local 1.1.1.1 remote 1.1.1.1 udp_sport 9 udp_dport 9", "remote"),
        ("local fd00::1 remote ff02::2 encap ip", "remote"),
    ],
)
def test_tunnel_to_nowhere_is_refused(line: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_line(f"add tunnel tid 1 ptid 2 {line}")
    assert info.value.field == field


@pytest.mark.parametrize("word", ["any", "all", "default", "0.0.0.0"])
def test_wildcard_local_is_refused(word: str) -> None:
    # iproute2 reads these words as 0.0.0.0 (get_addr); a tunnel needs a real local.
    with pytest.raises(ConfigError) as info:
        parse_line(f"add tunnel tid 1 ptid 2 local {word} remote 2.2.2.2 encap ip")
    assert info.value.field == "local"
    assert "\n" not in str(info.value)


def test_last_value_wins() -> None:
    cmd = parse_line("show tunnel tunnel_id 1 tunnel_id 2")
    assert cmd.tunnel_id == 2


def test_del_and_show_requests() -> None:
    assert parse_line("del tunnel tid 5").to_request() == {"op": "del_tunnel", "tunnel_id": 5}
    assert parse_line("del session tid 5 sid 6").to_request() == {
        "op": "del_session",
        "tunnel_id": 5,
        "session_id": 6,
    }
    assert parse(["show", "tunnel"]).to_request() == {"op": "show_tunnels"}
    assert parse_line("show tunnel tid 3 sid 4").to_request() == {
        "op": "show_tunnels",
        "tunnel_id": 3,
    }
    assert parse(["show", "session"]).to_request() == {"op": "show_sessions"}
    assert parse_line("show session sid 4").to_request() == {
        "op": "show_sessions",
        "session_id": 4,
    }
    assert parse_line("show session tid 3 sid 4").to_request() == {
        "op": "show_sessions",
        "tunnel_id": 3,
        "session_id": 4,
    }


def test_del_tunnel_with_session_id_deletes_the_session() -> None:
    # ipl2tp.c do_del: a session_id means delete_session, whatever the kind word.
    assert parse_line("del tunnel tid 5 sid 6") == Command(
        "del", "session", tunnel_id=5, session_id=6
    )


def test_show_with_both_words_shows_sessions() -> None:
    assert parse_line("show tunnel session").kind == "session"


@pytest.mark.parametrize(
    "argv",
    [[], ["add"], ["del"], ["show"], ["list"]],
)
def test_incomplete_command_asks_for_usage(argv: list[str]) -> None:
    with pytest.raises(HelpRequested) as info:
        parse(argv)
    assert not info.value.explicit


@pytest.mark.parametrize("argv", [["help"], ["h"], ["add", "tunnel", "help"], ["show", "he"]])
def test_help(argv: list[str]) -> None:
    with pytest.raises(HelpRequested) as info:
        parse(argv)
    assert info.value.explicit


def test_parse_u32_like_get_u32() -> None:
    assert parse_u32("x", "4294967295") == 0xFFFFFFFF
    assert parse_u32("x", "0xFFFFFFFF") == 0xFFFFFFFF
    assert parse_u32("x", "017") == 15
    assert parse_u32("x", "0") == 0
    assert parse_u32("x", "+5") == 5
    for bad in ["", "0x", "08", "1.5", "-1", "12abc", "4294967296", "0x100000000"]:
        with pytest.raises(ConfigError):
            parse_u32("x", bad)


# ---------------------------------------------------------------------------------------
# Errors: the right exception, and a message naming the option and the value.

TUNNEL = (
    "add tunnel tunnel_id 1 peer_tunnel_id 2 local 1.1.1.1 remote 2.2.2.2 udp_sport 1 udp_dport 2"
)
SESSION = "add session tunnel_id 1 session_id 2 peer_session_id 3"


def with_option(base: str, option: str, value: str) -> list[str]:
    """``base`` with ``option value`` appended (a later option wins, as in iproute2)."""
    return [*base.split(), option, value]


@pytest.mark.parametrize(
    ("base", "option", "field", "value"),
    [
        (TUNNEL, "tunnel_id", "tunnel_id", "abc"),
        (TUNNEL, "tunnel_id", "tunnel_id", "0"),
        (TUNNEL, "tunnel_id", "tunnel_id", "4294967296"),
        (TUNNEL, "tid", "tunnel_id", "-1"),
        (TUNNEL, "peer_tunnel_id", "peer_tunnel_id", "0x0"),
        (TUNNEL, "ptid", "peer_tunnel_id", "1e3"),
        (SESSION, "session_id", "session_id", "0"),
        (SESSION, "sid", "session_id", "99999999999"),
        (SESSION, "peer_session_id", "peer_session_id", "abc"),
        (SESSION, "psid", "peer_session_id", ""),
        (TUNNEL, "udp_sport", "udp_sport", "0"),
        (TUNNEL, "udp_sport", "udp_sport", "65536"),
        (TUNNEL, "udp_dport", "udp_dport", "http"),
        (TUNNEL, "local", "local", "1.1.1"),
        (TUNNEL, "remote", "remote", "example.org"),
        (TUNNEL, "remote", "remote", "2001:db8::1"),  # not the family of local
        (TUNNEL, "remote", "remote", "224.0.0.1"),
        (TUNNEL, "remote", "remote", "255.255.255.255"),
        (TUNNEL, "remote", "remote", "0.0.0.0"),
        (TUNNEL, "local", "local", "0.0.0.0"),
        (TUNNEL, "encap", "encap", "gre"),
        (TUNNEL, "encap", "encap", "UDP"),  # strcmp in iproute2
        (TUNNEL, "udp_csum", "udp_csum", "yes"),
        (TUNNEL, "udp6_csum_tx", "udp6_csum_tx", "ON"),
        (TUNNEL, "udp6_csum_rx", "udp6_csum_rx", "1"),
        (SESSION, "cookie", "cookie", "012345"),
        (SESSION, "cookie", "cookie", "0123456"),
        (SESSION, "cookie", "cookie", "0123456789abcde"),
        (SESSION, "cookie", "cookie", "0123456g"),
        (SESSION, "peer_cookie", "peer_cookie", "xyzxyzxy"),
        (SESSION, "peer_cookie", "peer_cookie", "0123456789abcdef01"),
        (SESSION, "l2spec_type", "l2spec_type", "cisco"),
        (SESSION, "seq", "seq", "sometimes"),
        (SESSION, "seq_policy", "seq_policy", "linux"),
        (SESSION, "reorder_timeout", "reorder_timeout", "soon"),
        (SESSION, "reorder_timeout", "reorder_timeout", "3600001"),
        (SESSION, "name", "name", "this-name-is-too-long"),
        (SESSION, "name", "name", "a/b"),
    ],
)
def test_bad_values(base: str, option: str, field: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(with_option(base, option, value))
    assert info.value.field == field
    assert f'"{value}"' in str(info.value)
    assert field in str(info.value)


def test_seq_needs_default_sublayer() -> None:
    with pytest.raises(ConfigError, match="seq"):
        parse(f"{SESSION} l2spec_type none seq both".split())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "tunnel", "foo"], 'unknown option "foo"'),
        (["add", "tunnel", "tunnel_id", "1", "--bar"], 'unknown option "--bar"'),
        (["show", "tunnels"], 'unknown option "tunnels"'),
        (["add", "tunnel", "tunnel_id"], 'option "tunnel_id" needs a value'),
        (["add", "session", "tid", "1", "cookie"], 'option "cookie" needs a value'),
        (["add", "session", "offset"], 'option "offset" needs a value'),
        (["add", "tunnel", "session", "tid", "1"], '"tunnel" and "session"'),
    ],
)
def test_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse(argv)
    assert message in str(info.value)
    assert not isinstance(info.value, HelpRequested)


@pytest.mark.parametrize(
    ("line", "field"),
    [
        # The order of the checks is ipl2tp.c's do_add / do_del / do_show.
        ("add tunnel_id 1", "tunnel or session"),
        ("del tid 1", "tunnel or session"),
        ("show tid 1", "tunnel or session"),
        ("add tunnel peer_tunnel_id 2", "tunnel_id"),
        ("add tunnel tunnel_id 1", "peer_tunnel_id"),
        ("add tunnel tunnel_id 1 peer_tunnel_id 2", "local"),
        ("add tunnel tunnel_id 1 peer_tunnel_id 2 local 1.1.1.1", "remote"),
        ("add tunnel tunnel_id 1 peer_tunnel_id 2 local 1.1.1.1 remote 2.2.2.2", "udp_sport"),
        (
            "add tunnel tunnel_id 1 peer_tunnel_id 2 local 1.1.1.1 remote 2.2.2.2 udp_sport 5",
            "udp_dport",
        ),
        ("add session session_id 1 peer_session_id 2", "tunnel_id"),
        ("add session tunnel_id 1 session_id 2", "peer_session_id"),
        ("add session tunnel_id 1", "peer_session_id"),
        ("add session tunnel_id 1 peer_session_id 2", "session_id"),
        ("del tunnel", "tunnel_id"),
        ("del session tunnel_id 1", "session_id"),
        ("del session session_id 1", "tunnel_id"),
    ],
)
def test_missing_arguments(line: str, field: str) -> None:
    with pytest.raises(MissingArgument) as info:
        parse(line.split())
    assert info.value.field == field
    assert f'"{field}"' in str(info.value)


def test_errors_are_l2tp_errors() -> None:
    assert issubclass(UsageError, L2TPError)
    assert issubclass(HelpRequested, UsageError)


# ---------------------------------------------------------------------------------------
# Round trip: a config rendered as a command line parses back into itself.

ids = st.integers(min_value=1, max_value=0xFFFFFFFF)
ports = st.integers(min_value=1, max_value=65535)
# Unicast: TunnelConfig refuses wildcard, multicast and broadcast endpoints.
ipv4 = st.ip_addresses(v=4).filter(lambda a: not (a.is_unspecified or a.is_multicast
                                                  or a.packed == b"\xff" * 4))  # fmt: skip
ipv6 = st.ip_addresses(v=6).filter(lambda a: not (a.is_unspecified or a.is_multicast))
cookies = st.sampled_from([0, 4, 8]).flatmap(lambda n: st.binary(min_size=n, max_size=n))
ifnames = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/:"),
    min_size=1,
    max_size=15,
).filter(lambda s: s not in (".", ".."))


@st.composite
def tunnels(draw: st.DrawFn) -> TunnelConfig:
    family = draw(st.sampled_from([ipv4, ipv6]))
    encap = draw(st.sampled_from(Encap))
    udp = encap is Encap.UDP
    local = draw(family)
    return TunnelConfig(
        tunnel_id=draw(ids),
        peer_tunnel_id=draw(ids),
        local=local,
        remote=draw(family.filter(lambda a: a != local)),
        encap=encap,
        udp_sport=draw(ports) if udp else None,
        udp_dport=draw(ports) if udp else None,
        udp_csum=draw(st.booleans()) if udp else False,
        udp6_csum_tx=draw(st.booleans()) if udp else True,
        udp6_csum_rx=draw(st.booleans()) if udp else True,
    )


@st.composite
def sessions(draw: st.DrawFn) -> SessionConfig:
    l2spec = draw(st.sampled_from(L2SpecType))
    seq = draw(st.sampled_from(SeqMode)) if l2spec is L2SpecType.DEFAULT else SeqMode.NONE
    return SessionConfig(
        tunnel_id=draw(ids),
        session_id=draw(ids),
        peer_session_id=draw(ids),
        name=draw(st.none() | ifnames),
        cookie=draw(cookies),
        peer_cookie=draw(cookies),
        l2spec_type=l2spec,
        seq=seq,
        reorder_timeout=draw(st.integers(min_value=0, max_value=3_600_000)),
        seq_policy=draw(st.sampled_from(SeqPolicy)),
    )


@given(tunnels())
def test_tunnel_round_trip(config: TunnelConfig) -> None:
    cmd = parse(argv_for(config))
    assert cmd.kind == "tunnel"
    assert cmd.tunnel == config


@given(sessions())
def test_session_round_trip(config: SessionConfig) -> None:
    cmd = parse(argv_for(config))
    assert cmd.kind == "session"
    assert cmd.session == config


@given(sessions(), st.randoms())
def test_session_round_trip_any_order(config: SessionConfig, rnd: random.Random) -> None:
    # Keywords may come in any order after the verb, as in iproute2.
    argv = argv_for(config)
    pairs = [argv[i : i + 2] for i in range(2, len(argv), 2)]
    rnd.shuffle(pairs)
    shuffled = [argv[0]] + [w for pair in pairs for w in pair] + [argv[1]]
    assert parse(shuffled).session == config
