"""Micro-benchmark of ESP seal and open (no I/O): C (fp_esp.c on libcrypto) against the
pure-Python reference (proto/esp.py on ``cryptography``).

    python3 bench/esp_micro.py [seconds-per-case]

For each algorithm and payload size (a 64-byte frame and a full 1446-byte frame behind
its L2TP and UDP headers) it prints packets per CPU-second of this thread (thread CPU
time, so other load on the machine does not count) and the payload rate that amounts
to, for:

- ``C loop``: fp_esp_seal / fp_esp_open called from C in place, as an engine thread
  would (``native.bench_esp``);
- ``C via Python``: ``native.EspSA.seal/open`` from a Python loop (what the sans-I/O
  binding costs);
- ``Python``: ``proto.esp.EspSA.seal/open``.

Figures only, no verdict: they vary with the CPU (AES-NI, SHA extensions) and OpenSSL.
For the engine path end to end (TCP through an encrypted pseudowire, compiled against
Python) see bench/esp_tunnel.py.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l2tpv3.proto.esp import (
    AEAD_CHACHA,
    AEAD_GCM,
    AUTH_SHA1,
    AUTH_SHA256,
    ENC_CBC,
    EspSA,
    genkey,
)

try:
    from l2tpv3.fast import native
except ImportError:
    native = None  # type: ignore[assignment]

# (label, alg, key length, auth, auth key length)
CASES = [
    ("rfc4106(gcm(aes)) 128", AEAD_GCM, 20, None, 0),
    ("rfc4106(gcm(aes)) 256", AEAD_GCM, 36, None, 0),
    ("rfc7539esp(chacha20,poly1305)", AEAD_CHACHA, 36, None, 0),
    ("cbc(aes) 128 + hmac(sha256)", ENC_CBC, 16, AUTH_SHA256, 32),
    ("cbc(aes) 128 + hmac(sha1)", ENC_CBC, 16, AUTH_SHA1, 20),
]
# A 64-byte frame and a 1446-byte one, each behind UDP (8) and L2TP (12) headers.
SIZES = [64 + 20, 1446 + 14 + 20]


def pair(
    cls: Callable[..., EspSA], case: tuple[str, str, int, str | None, int]
) -> tuple[EspSA, EspSA]:
    _, alg, klen, auth, alen = case
    key = genkey(alg)[:klen]
    akey = genkey(auth)[:alen] if auth else None
    return cls(0x100, alg, key, akey, auth), cls(0x100, alg, key, akey, auth)


def timed(fn: Callable[[int], None], seconds: float) -> float:
    """Calls per CPU-second of fn(n) (n calls each), doubling n until seconds pass."""
    n, done, start = 16, 0, time.thread_time()
    while time.thread_time() - start < seconds:
        fn(n)
        done += n
        n *= 2
    return done / (time.thread_time() - start)


def python_rates(
    cls: Callable[..., EspSA],
    case: tuple[str, str, int, str | None, int],
    size: int,
    seconds: float,
) -> tuple[float, float]:
    tx, rx = pair(cls, case)
    payload = bytes(size)
    packet = tx.seal(payload, 17)
    assert packet is not None

    def seal(n: int) -> None:
        for _ in range(n):
            tx.seal(payload, 17)

    def open_(n: int) -> None:
        for _ in range(n):
            rx.open(packet)

    return timed(seal, seconds), timed(open_, seconds)


def c_loop_rates(
    case: tuple[str, str, int, str | None, int], size: int, seconds: float
) -> tuple[float, float]:
    tx, rx = pair(native.EspSA, case)  # type: ignore[arg-type]
    count, s_cpu, o_cpu = 1024, 0.0, 0.0
    total = 0
    while s_cpu + o_cpu < 2 * seconds:
        s, o = native.bench_esp(tx, rx, size, count)  # type: ignore[arg-type]
        s_cpu, o_cpu, total = s_cpu + s, o_cpu + o, total + count
        count *= 2
    return total / s_cpu, total / o_cpu


def fmt(pps: float, size: int) -> str:
    return f"{pps / 1e3:9.1f} kpps {pps * size * 8 / 1e9:6.2f} Gbit/s"


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
    have_c = native is not None and native.HAVE_ESP
    if not have_c:
        print("the fast path is not built with libcrypto: Python figures only")
    print(f"ESP seal / open per CPU-second of one thread ({seconds} s per figure)\n")
    print(f"{'algorithm':32} {'payload':>7}  {'path':14} {'seal':>28} {'open':>28}")
    for case in CASES:
        for size in SIZES:
            rows = []
            if have_c:
                rows.append(("C loop", c_loop_rates(case, size, seconds)))
                rows.append(("C via Python", python_rates(native.EspSA, case, size, seconds)))  # type: ignore[arg-type]
            rows.append(("Python", python_rates(EspSA, case, size, seconds)))
            for path, (seal, open_) in rows:
                print(f"{case[0]:32} {size:7d}  {path:14} {fmt(seal, size)} {fmt(open_, size)}")
            if have_c:
                c, py = rows[0][1], rows[-1][1]
                print(
                    f"{'':32} {'':7}  {'C loop / Py':14} "
                    f"{c[0] / py[0]:23.1f}x {c[1] / py[1]:27.1f}x"
                )
        print()


if __name__ == "__main__":
    main()
