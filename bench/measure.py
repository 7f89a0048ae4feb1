"""One measurement each: iperf3 TCP, iperf3 64-byte UDP, ping; CPU of given PIDs meanwhile."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.host import CLK_TCK, cpu_ticks
from interop.netns import Lab, Netns

IPERF_PORT = 5201


@dataclass
class Sample:
    value: float | None
    cpu: float | None = None  # percent of one core, summed over the watched PIDs
    retransmits: int | None = None
    sent: float | None = None  # 64-byte datagrams per second the client managed to send
    error: str | None = None


def _cpu(pids: Sequence[int]) -> int:
    return sum(cpu_ticks(p) for p in pids)


def _iperf(lab: Lab, ns: Netns, args: list[str], seconds: float, pids: Sequence[int]
           ) -> tuple[dict[str, object] | None, float | None, str | None]:  # fmt: skip
    before = _cpu(pids) if pids else 0
    t0 = time.monotonic()
    proc = lab.run(ns, "iperf3", *args, "-J", check=False, timeout=seconds + 30)
    wall = time.monotonic() - t0
    cpu = 100.0 * (_cpu(pids) - before) / CLK_TCK / wall if pids else None
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        return None, cpu, (proc.stderr.strip() or proc.stdout.strip() or "no output")[:200]
    if "error" in doc:
        return None, cpu, str(doc["error"])[:200]
    return doc, cpu, None


def tcp(lab: Lab, ns: Netns, server: str, seconds: float, reverse: bool, pids: Sequence[int]
        ) -> Sample:  # fmt: skip
    """Goodput in Gbit/s as the receiver counted it (after a 1 s omitted warm-up)."""
    args = ["-c", server, "-p", str(IPERF_PORT), "-t", str(seconds), "-O", "1"]
    if reverse:
        args.append("-R")
    doc, cpu, err = _iperf(lab, ns, args, seconds + 1, pids)
    if doc is None:
        return Sample(None, cpu, error=err)
    end = doc["end"]
    assert isinstance(end, dict)
    bps = float(end["sum_received"]["bits_per_second"])
    retr = end.get("sum_sent", {}).get("retransmits")
    return Sample(bps / 1e9, cpu, retransmits=retr)


def udp64(lab: Lab, ns: Netns, server: str, seconds: float, pids: Sequence[int]) -> Sample:
    """64-byte UDP datagrams received per second at the server, sender unthrottled."""
    args = ["-c", server, "-p", str(IPERF_PORT), "-t", str(seconds), "-u", "-l", "64", "-b", "0"]
    doc, cpu, err = _iperf(lab, ns, args, seconds, pids)
    if doc is None:
        return Sample(None, cpu, error=err)
    end = doc["end"]
    assert isinstance(end, dict)
    # The receiver's byte count over the datagram size: exact, unlike sent - lost
    # (iperf3 cannot count as lost what was sent after the last datagram it saw).
    got, put = end["sum_received"], end["sum_sent"]
    packets = int(got["bytes"]) // 64
    secs = float(got["seconds"]) or seconds
    sent = int(put["bytes"]) // 64 / (float(put["seconds"]) or seconds)
    return Sample(packets / secs, cpu, sent=sent)


_TIME = re.compile(r"time=([0-9.]+) ms")


def ping(lab: Lab, ns: Netns, server: str, count: int, interval: float) -> tuple[Sample, Sample]:
    """Average and 99th percentile round trip in ms."""
    proc = lab.run(
        ns, "ping", "-n", "-c", str(count), "-i", str(interval), "-W", "1", server,
        check=False, timeout=count * interval + 30,
    )  # fmt: skip
    times = sorted(float(m) for m in _TIME.findall(proc.stdout))
    if len(times) < count // 2:
        err = f"only {len(times)}/{count} replies"
        return Sample(None, error=err), Sample(None, error=err)
    p99 = times[max(0, math.ceil(0.99 * len(times)) - 1)]
    return Sample(sum(times) / len(times)), Sample(p99)
