"""The atheris targets: ``python3 -m fuzz.python.atheris_main TARGET [libFuzzer options]
[corpus directories]`` (fuzz/run.py builds the command line).

* ``rx-python``: the pure-Python receive path (:mod:`fuzz.python.rxcheck`), every
  datagram accounted for;
* ``rx-diff``: the same input through the Python and the Cython implementations, which
  must agree on every frame, counter and drop (and both keep the accounting rules);
* ``control``: the control socket's connection handler and dispatcher
  (:mod:`fuzz.python.control`) never raise and always answer well-formed JSON.

A broken rule raises :class:`~fuzz.python.rxcheck.Invariant`, which atheris reports
as a crash and saves the input (``crash-<sha1>``) for a regression test.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import atheris
from atheris.import_hook import instrument_imports

with instrument_imports(include=["l2tpv3", "fuzz"]):
    from fuzz.python import control, rxcheck

TARGETS = ("rx-python", "rx-diff", "control")


def target(name: str) -> Callable[[bytes], None]:
    if name == "rx-python":

        def rx_python(data: bytes) -> None:
            rxcheck.run(data, "python")

        return rx_python
    if name == "rx-diff":

        def rx_diff(data: bytes) -> None:
            rxcheck.compare(data)

        return rx_diff
    if name == "control":
        # The control package and the daemon are imported here, instrumented.
        with instrument_imports(include=["l2tpv3", "fuzz"]):
            ctl = control.Control()

        def control_target(data: bytes) -> None:
            ctl.feed(data)

        return control_target
    raise SystemExit(f"unknown target {name!r}; one of {', '.join(TARGETS)}")


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(f"usage: atheris_main TARGET [libFuzzer args]; TARGET: {TARGETS}")
    fn = target(sys.argv[1])
    atheris.Setup([sys.argv[0], *sys.argv[2:]], fn)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
