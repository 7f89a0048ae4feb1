"""What the fuzzers found, one test each (docs/fuzzing.md says how a finding becomes one).

A finding still open is marked ``xfail(strict=True)`` with the issue it belongs to: the
test turns red the day the fix lands, so that the mark is removed and the test guards
the fix from then on. Inputs saved by a fuzzer go in tests/fuzz/findings/<target>/, where
tests/fuzz/test_corpus.py replays them through their target.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fuzz.python.control import Control
from fuzz.python.rxcheck import Invariant


@pytest.fixture
def control() -> Iterator[Control]:
    ctl = Control()
    yield ctl
    ctl.close()


@pytest.mark.xfail(
    strict=True,
    raises=Invariant,
    reason="issue 11 item 7: json.loads raises RecursionError, which the connection "
    "handler does not catch (the client gets no answer, asyncio logs a traceback)",
)
@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_control_deeply_nested_json_is_answered(control: Control, opener: bytes) -> None:
    answers = control.feed(opener * 100_000 + b"\n" + b'{"op": "ping"}\n')
    assert answers[0] == {"ok": False, "error": "malformed request"}
    assert answers[1]["ok"] is True


def test_control_answers_every_line_after_garbage(control: Control) -> None:
    answers = control.feed(b'\xff\n{"op": 1}\n{"op": "ping"}\n[]\n')
    assert [a["ok"] for a in answers] == [False, False, True, False]
