"""The tutorial's pictures are drawn by l2tpv3/tools/diagrams.py: the committed files must
be what it draws now (like contrib/man), and the drawings must say what the data says."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from l2tpv3.tools import diagrams
from l2tpv3.tools.diagrams import Arrival, replay

DOCS = Path(__file__).resolve().parents[2] / "docs" / "tutorial"


def test_committed_pictures_are_current(tmp_path: Path) -> None:
    drawn = diagrams.render_docs(tmp_path)
    assert set(drawn) == {"header-stack.svg", "reorder-timeline.svg"}
    for name, text in drawn.items():
        committed = (DOCS / name).read_text()
        assert committed == text, (
            f"docs/tutorial/{name} is stale: run `python3 -m l2tpv3.tools.diagrams docs`"
        )
        ET.fromstring(text)  # well-formed SVG


def test_header_stack_is_the_overhead_arithmetic() -> None:
    svg = diagrams.header_stack_svg()
    # The seed's line: 1446 / 1406 for UDP; IP encapsulation saves the 8-byte UDP header
    # and the 4-byte flags word; ESP (GCM) costs 42 bytes more than plain UDP here.
    assert "MTU 1446, MSS 1406, overhead 54 (3.6%)" in svg
    assert "MTU 1458, MSS 1418, overhead 42" in svg
    assert "MTU 1438, MSS 1398" in svg  # 8-byte cookie
    assert "MTU 1426, MSS 1386" in svg  # IPv6 underlay
    assert "MTU 1412, MSS 1372" in svg  # ESP rfc4106(gcm(aes))


def test_replay_is_the_receive_sequencer() -> None:
    # protocol.md 6.2's example: 3 lost, 4..11 in order: 5 dropped, then resynchronised.
    arrivals = [Arrival(float(i), s) for i, s in enumerate([0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11])]
    fates, c = replay(arrivals, 0)
    assert [f.arrival.seq for f in fates if f.at is None] == [4, 5, 6, 7, 8]
    assert (c.rx_seq_discards, c.rx_errors, c.rx_packets) == (5, 5, 6)
    # With a reorder timeout, a late packet is placed in front and all are delivered.
    late = [Arrival(0, 0), Arrival(1, 1), Arrival(2, 3), Arrival(3, 2), Arrival(4, 4)]
    fates, c = replay(late, 100)
    assert all(f.at is not None for f in fates) and c.rx_oos_packets == 1
    assert fates[2].at == 3.0  # 3 waited for 2


def test_recorded_run_shows_reordering() -> None:
    run = json.loads((DOCS / "reorder-run.json").read_text())
    first, second = run["runs"]
    for part in (first, second):
        seqs = [s for _, s in part["arrivals"]]
        assert sorted(seqs) == list(range(len(seqs))) and seqs != sorted(seqs)
    _, c0 = replay([Arrival(float(t), s) for t, s in first["arrivals"]], 0)
    _, c1 = replay([Arrival(float(t), s) for t, s in second["arrivals"]], 1000)
    assert c0.rx_seq_discards > 0 and c1.rx_seq_discards == 0 and c1.rx_oos_packets > 0


def test_timeline_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    for path in (str(junk), str(tmp_path / "missing.pcap")):
        assert diagrams.main(["timeline", "-r", path]) == 2
        err = capsys.readouterr().err
        assert err.startswith("Error: ") and err.count("\n") == 1, err
