"""ESP (issue 9) against the Linux kernel's xfrm, in the QEMU guest (interop/).

Our daemon runs the tunnel, its session and two SAs (added with ``l2tpv3 add sa``); the
kernel is configured only from ``l2tpv3 peer-config --for linux --config FILE``, where
FILE holds the same tunnel, session and SAs with their keys (the daemon never tells a
key): ``ip l2tp`` lines, then ``ip xfrm state`` and ``ip xfrm policy`` lines. Per case:
ping both ways, a TCP transfer each way with SHA-256 equal, and the kernel's
``ip -s xfrm state`` packet counters equal to ours.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from interop.build import BuildError, build
from interop.cases import (
    KERNEL_SID,
    KERNEL_TID,
    OUR_DPORT,
    OUR_SID,
    OUR_SPORT,
    OUR_TID,
    Case,
    configure_ours,
    reset,
)
from interop.lab import (
    GUEST4,
    GUEST6,
    HOST4,
    HOST6,
    INNER_GUEST4,
    INNER_GUEST6,
    INNER_HOST4,
    INNER_HOST6,
    KernelPeer,
    kernel_peer,
)
from interop.traffic import guest_to_host, host_to_guest
from tests.support.netns import Daemon, require_root, wait_until, workdir

pytestmark = [pytest.mark.root, pytest.mark.interop]

TRANSFER = int(float(os.environ.get("L2TPV3_INTEROP_MB", "2")) * 1024 * 1024)
SPI_OUT, SPI_IN = 0x3000, 0x4000

# (case, algorithm): the key pairs are fixed test keys, one per direction.
ESP_CASES = [
    (Case("udp", 4, 0, "default", "none"), "rfc4106(gcm(aes))"),
    (Case("ip", 6, 0, "default", "none"), "rfc7539esp(chacha20,poly1305)"),
    (Case("udp", 6, 0, "default", "none"), "hmac(sha256)"),
    (Case("ip", 4, 0, "default", "none"), "hmac(sha1)"),
    (Case("ip", 4, 0, "default", "none"), "rfc4106(gcm(aes))-256"),
]


def require_interop() -> None:
    missing = [t for t in ("qemu-system-x86_64", "apt-get", "dpkg") if shutil.which(t) is None]
    if missing:
        msg = "interop tests need " + ", ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


@dataclass
class Lab:
    peer: KernelPeer
    daemon: Daemon
    wd: Path


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root()
    require_interop()
    try:
        art = build()
    except BuildError as exc:
        pytest.fail(f"interop build: {exc}")
    with workdir() as wd, kernel_peer(artifacts=art, workdir=wd) as peer:
        cmd = [_script("l2tpv3d"), "--state-dir", str(wd / "state")]
        daemon = Daemon(peer.ns, wd, command=cmd)
        try:
            yield Lab(peer, daemon, wd)
        finally:
            log = daemon.stop()
            assert "Traceback" not in log, log


def _script(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).with_name(name))


def _sa_fields(alg: str, n: int) -> dict[str, Any]:
    """Keys for SA number n (fixed test values)."""
    b = f"{n + 1:x}" * 2
    if alg == "rfc4106(gcm(aes))":
        return {"aead": alg, "key": "0x" + b * 20}
    if alg == "rfc4106(gcm(aes))-256":
        return {"aead": "rfc4106(gcm(aes))", "key": "0x" + b * 36}
    if alg.startswith("rfc7539esp"):
        return {"aead": alg, "key": "0x" + b * 36}
    alen = 32 if alg == "hmac(sha256)" else 20
    return {"enc": "cbc(aes)", "key": "0x" + b * 16, "auth": alg, "auth_key": "0x" + b[::-1] * alen}


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(v)


def _table(name: str, entries: dict[str, Any]) -> str:
    body = "".join(f"{k} = {_toml_value(v)}\n" for k, v in entries.items() if v is not None)
    return f"[[{name}]]\n{body}\n"


def _kernel_counts(peer: KernelPeer) -> dict[int, int]:
    """SPI -> packets, from ``ip -s xfrm state``."""
    text = peer.sh("ip -s xfrm state")
    out: dict[int, int] = {}
    spi = None
    for line in text.splitlines():
        m = re.search(r"spi (0x[0-9a-f]+)", line)
        if m:
            spi = int(m.group(1), 16)
        # "lifetime current:" is followed by "N(bytes), M(packets)"; the limits above
        # it read "(INF)(bytes)" and do not match.
        m = re.search(r"(\d+)\(bytes\), (\d+)\(packets\)", line)
        if m and spi is not None and spi not in out:
            out[spi] = int(m.group(2))
    return out


@pytest.mark.parametrize(("case", "alg"), ESP_CASES, ids=[f"{c.id}-{a}" for c, a in ESP_CASES])
def test_esp_with_the_kernel(lab: Lab, case: Case, alg: str) -> None:
    peer, daemon, wd = lab.peer, lab.daemon, lab.wd
    reset(peer, daemon)
    peer.sh("ip xfrm state flush; ip xfrm policy flush")
    configure_ours(peer, daemon, case)
    sas = []
    for n, (direction, spi) in enumerate((("out", SPI_OUT), ("in", SPI_IN))):
        fields = {"tunnel_id": OUR_TID, "dir": direction, "spi": spi, **_sa_fields(alg, n)}
        sas.append(fields)
        words = ["add", "sa", "tunnel_id", str(OUR_TID), "dir", direction, "spi", str(spi)]
        for key in ("aead", "enc", "auth"):
            if key in fields:
                words += [key, fields[key]]
                if key != "auth":
                    kf = wd / f"key-{direction}"
                    kf.write_text(fields["key"])
                    kf.chmod(0o600)
                    words += ["key", f"@{kf}"]
        if "auth_key" in fields:
            kf = wd / f"auth-{direction}"
            kf.write_text(fields["auth_key"])
            kf.chmod(0o600)
            words += ["auth_key", f"@{kf}"]
        daemon.cli(*words)
    # The same configuration, keys included, as a private TOML file for peer-config.
    local, remote = (HOST4, GUEST4) if case.family == 4 else (HOST6, GUEST6)
    tunnel: dict[str, Any] = {"tunnel_id": OUR_TID, "peer_tunnel_id": KERNEL_TID,
                              "encap": case.encap, "local": local, "remote": remote}  # fmt: skip
    if case.encap == "udp":
        tunnel.update(udp_sport=OUR_SPORT, udp_dport=OUR_DPORT)
    text = _table("tunnel", tunnel)
    text += _table("session", {"tunnel_id": OUR_TID, "session_id": OUR_SID,
                               "peer_session_id": KERNEL_SID})  # fmt: skip
    for fields in sas:
        text += _table("sa", fields)
    cfg = wd / "ours.toml"
    cfg.write_text(text)
    cfg.chmod(0o600)
    out = daemon.cli("peer-config", "--for", "linux", "--config", str(cfg)).stdout
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert any(ln.startswith("ip xfrm state add") for ln in lines), out
    assert any("dir in" in ln for ln in lines) and any("dir out" in ln for ln in lines), out
    peer.configure(lines)

    def ours() -> dict[tuple[str, int], dict[str, int]]:
        states = json.loads(daemon.cli("-j", "-s", "show", "sa").stdout)
        return {(s["dir"], s["spi"]): s["stats"] for s in states}

    if not wait_until(lambda: _ping_guest(peer, INNER_HOST4), timeout=20):
        diag = peer.sh("cat /proc/net/xfrm_stat; ip -s xfrm state; ip xfrm policy; "
                       "ip -s l2tp show session; ip -s link")  # fmt: skip
        pytest.fail(f"no path\nours: {daemon.cli('-j', '-s', 'show', 'sa').stdout}\n"
                    f"{daemon.cli('-s', 'show', 'tunnel').stdout}\n"
                    f"{daemon.cli('-s', 'show', 'session').stdout}\n"
                    f"kernel:\n{diag}\nlog:\n{daemon.log_text()[-3000:]}")  # fmt: skip
    assert _ping_guest(peer, INNER_HOST6)
    for addr in (INNER_GUEST4, INNER_GUEST6):
        peer.ns.run("ping", "-c", "2", "-i", "0.2", "-W", "2", addr, timeout=30)

    # Counters from here on: packets sent before the kernel had its states (our
    # l2tpeth0 came up first) are the kernel's XfrmInNoStates, not a disagreement.
    # Taken when nothing is in flight: two reads half a second apart agree.
    def snapshot() -> tuple[dict[int, int], dict[tuple[str, int], dict[str, int]]]:
        return _kernel_counts(peer), ours()

    k0, o0 = snapshot()
    for _ in range(20):
        time.sleep(0.5)
        again = snapshot()
        if again == (k0, o0):
            break
        k0, o0 = again
    inner = INNER_GUEST4 if case.family == 4 else INNER_GUEST6
    back = INNER_HOST4 if case.family == 4 else INNER_HOST6
    down = host_to_guest(peer, inner, TRANSFER)
    assert down.ok, down
    up = guest_to_host(peer, back, TRANSFER)
    assert up.ok, up

    def agree() -> bool:
        k, o = _kernel_counts(peer), ours()
        return (
            k[SPI_OUT] - k0[SPI_OUT]
            == o[("out", SPI_OUT)]["tx_packets"] - o0[("out", SPI_OUT)]["tx_packets"]
            and k[SPI_IN] - k0[SPI_IN]
            == o[("in", SPI_IN)]["rx_packets"] - o0[("in", SPI_IN)]["rx_packets"]
        )

    if not wait_until(agree, timeout=10):
        diag = peer.sh("cat /proc/net/xfrm_stat; ip -s xfrm state | grep -A1 stats")
        taps = peer.ns.run("ip", "-s", "link", "show", "tap0").stdout
        pytest.fail(f"counters differ: kernel {k0} -> {_kernel_counts(peer)}, ours {o0} -> "
                    f"{ours()}\n{diag}\n{taps}")  # fmt: skip
    assert ours()[("out", SPI_OUT)]["tx_packets"] - o0[("out", SPI_OUT)]["tx_packets"] > (
        TRANSFER // 1500
    )
    drops = json.loads(daemon.cli("-j", "-s", "show", "sa").stdout)
    for s in drops:
        assert all(v == 0 for v in s["drops"].values()), s
    peer.sh("ip xfrm state flush; ip xfrm policy flush")


def _ping_guest(peer: KernelPeer, addr: str) -> bool:
    opt = "-6 " if ":" in addr else ""
    return peer.vm.run(f"ping {opt}-A -c 2 -W 2 {addr}", timeout=30).status == 0
