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
    """The control target with no open finding tolerated."""
    ctl = Control(tolerate=frozenset())
    yield ctl
    ctl.close()


@pytest.mark.xfail(
    strict=True,
    raises=Invariant,
    reason="issue 11 item 7: json.loads raises RecursionError, which the connection "
    "handler does not catch (the client gets no answer, asyncio logs a traceback); when "
    'fixed, also drop "deep-json" from fuzz.python.control.OPEN_FINDINGS',
)
@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_control_deeply_nested_json_is_answered(control: Control, opener: bytes) -> None:
    answers = control.feed(opener * 100_000 + b"\n" + b'{"op": "ping"}\n')
    assert answers[0] == {"ok": False, "error": "malformed request"}
    assert answers[1]["ok"] is True


def test_control_answers_every_line_after_garbage(control: Control) -> None:
    answers = control.feed(b'\xff\n{"op": 1}\n{"op": "ping"}\n[]\n')
    assert [a["ok"] for a in answers] == [False, False, True, False]


@pytest.mark.xfail(
    strict=True,
    raises=Invariant,
    reason="found by the control fuzzer: the unknown-option error quotes the key verbatim, "
    "so a key with a newline gives an error of two lines (the protocol promises one); when "
    'fixed, also drop "multiline-error" from fuzz.python.control.OPEN_FINDINGS',
)
def test_control_errors_are_one_line(control: Control) -> None:
    # Input reduced from build/fuzz/artifacts/control/crash-680cdaac... (fuzz/run.py control).
    request = (
        b'{"op": "add_tunnel", "config": {"tunnel_id": 3, "peer_tu\\nnel_id": 2, '
        b'"local": "fd00::1", "remote": "fd00::2", "encap": "ip"}}\n'
    )
    (answer,) = control.feed(request)
    assert answer["ok"] is False
