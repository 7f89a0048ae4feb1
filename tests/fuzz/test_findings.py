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


@pytest.fixture
def control() -> Iterator[Control]:
    """The control target with no open finding tolerated."""
    ctl = Control(tolerate=frozenset())
    yield ctl
    ctl.close()


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_control_deeply_nested_json_is_answered(control: Control, opener: bytes) -> None:
    # Issue 11 item 7: json.loads raised RecursionError, which the connection handler did
    # not catch. 10,000 levels: far past the recursion limit, within the 64 KiB a request
    # may take (a longer line gets its own one-line error).
    answers = control.feed(opener * 10_000 + b"\n" + b'{"op": "ping"}\n')
    assert answers[0] == {"ok": False, "error": "malformed request: nested too deeply"}
    assert answers[1]["ok"] is True


def test_control_answers_every_line_after_garbage(control: Control) -> None:
    answers = control.feed(b'\xff\n{"op": 1}\n{"op": "ping"}\n[]\n')
    assert [a["ok"] for a in answers] == [False, False, True, False]


def test_control_errors_are_one_line(control: Control) -> None:
    # Found by the control fuzzer: the unknown-option error quoted the key verbatim, so a
    # key with a newline gave an error of two lines (the protocol promises one).
    # Input reduced from build/fuzz/artifacts/control/crash-680cdaac... (fuzz/run.py control).
    request = (
        b'{"op": "add_tunnel", "config": {"tunnel_id": 3, "peer_tu\\nnel_id": 2, '
        b'"local": "fd00::1", "remote": "fd00::2", "encap": "ip"}}\n'
    )
    (answer,) = control.feed(request)
    assert answer["ok"] is False
    assert "peer_tu\\nnel_id" in answer["error"]
