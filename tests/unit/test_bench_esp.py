"""The encrypted bench cases' parts that need no root: throwaway key material (private
files, a PKI OpenVPN accepts), the data-path label, and the report's ratio targets with
how far a miss falls short and why."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from bench import keys, report
from bench.cases import ESP_KEY_BYTES, ESP_MOVED, esp_cases, esp_datapath
from l2tpv3.config import read_key_file


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def loose_umask() -> Any:
    """Private files must be private whatever the caller's umask."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_write_private_is_0600_and_never_overwrites(tmp_path: Path, loose_umask: None) -> None:
    p = keys.write_private(tmp_path / "k", b"secret")
    assert _mode(p) == 0o600
    assert p.read_bytes() == b"secret"
    with pytest.raises(FileExistsError):
        keys.write_private(p, b"other")
    assert p.read_bytes() == b"secret"


def test_write_private_refuses_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(FileExistsError):
        keys.write_private(tmp_path / "link", b"secret")


def test_pki_private_files_and_chain(tmp_path: Path, loose_umask: None) -> None:
    pki = keys.make_pki(tmp_path / "pki")
    assert _mode(tmp_path / "pki") == 0o700
    assert _mode(pki.server_key) == 0o600
    assert _mode(pki.client_key) == 0o600
    # The CA's key signs the two certificates and is never written.
    assert sorted(p.name for p in (tmp_path / "pki").iterdir()) == [
        "ca.crt", "client.crt", "client.key", "server.crt", "server.key",
    ]  # fmt: skip
    ca = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for path, usage in ((pki.server_cert, ExtendedKeyUsageOID.SERVER_AUTH),
                        (pki.client_cert, ExtendedKeyUsageOID.CLIENT_AUTH)):  # fmt: skip
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        cert.verify_directly_issued_by(ca)
        assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [usage]
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_esp_key_file_is_what_add_sa_reads(tmp_path: Path, loose_umask: None) -> None:
    path = keys.esp_key(tmp_path / "sa", "a-to-b", ESP_KEY_BYTES)
    assert _mode(path) == 0o600
    key = read_key_file("key", str(path))  # refuses a file others can read
    assert len(key.reveal()) == 20  # AES-128 plus the 4-byte salt (RFC 4106 §8.1)
    assert keys.esp_key(tmp_path / "sa", "b-to-a", ESP_KEY_BYTES).read_bytes() != path.read_bytes()


def test_wg_keypair(tmp_path: Path, loose_umask: None) -> None:
    if shutil.which("wg") is None:
        # .ci/run installs wireguard-tools: under CI a missing wg is a failure.
        if os.environ.get("CI") == "true":
            pytest.fail("wg (wireguard-tools) not installed")
        pytest.skip("wg (wireguard-tools) not installed")
    path, pub = keys.wg_keypair(tmp_path / "wg", "end1")
    assert _mode(path) == 0o600
    assert len(pub) == 44 and pub.endswith("=")
    assert pub.encode() not in path.read_bytes()


def test_esp_datapath_label_says_which_path_ran() -> None:
    moved = f"INFO tunnel 13: {ESP_MOVED}: the tunnel moves there"
    label, reason, path = esp_datapath("l2tpv3 Cython + ESP", [moved, moved])
    assert path == "python" and "ran on the Python path" in label and reason
    label, _, path = esp_datapath("l2tpv3 Cython + ESP", ["", ""])
    assert path == "compiled" and label.endswith("(ESP in the C engine)")
    assert esp_datapath("x", [moved, ""])[2] == "mixed"


def test_esp_case_keys_match_the_report() -> None:
    assert {c.key for c in esp_cases()} == set(report.ESP_CASES)


def _case(tcp: float, pps: float = 1000.0, **extra: Any) -> dict[str, Any]:
    return {"label": "x", "available": True, "reason": "", "tcp_ab": tcp, "tcp_ba": tcp,
            "udp64_pps": pps, **extra}  # fmt: skip


def _by_name(tgts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["target"]: t for t in tgts}


def test_esp_targets_pass_and_miss_with_how_much_and_why() -> None:
    cases = {
        "veth": _case(10.0),
        "openvpn_gcm": _case(0.5),
        "vxlan_wg": _case(1.0),
        "l2tpv3_py_esp": _case(0.3, datapath="python"),
        "l2tpv3_cy_esp": _case(0.75, datapath="python"),
    }
    t = _by_name(report.targets(cases))
    cy_ovpn = t["Cython + ESP TCP vs OpenVPN AES-256-GCM"]
    assert cy_ovpn["measured"] == pytest.approx(1.5)
    assert cy_ovpn["pass"] is False
    assert "50% short" in cy_ovpn["note"]
    assert "pure-Python path" in cy_ovpn["note"]  # why: it was not the C engine
    cy_wg = t["Cython + ESP TCP vs VXLAN over wireguard-go"]
    assert cy_wg["pass"] is False and "25% short" in cy_wg["note"]
    py = t["pure-Python + ESP TCP vs OpenVPN AES-256-GCM"]
    assert py["measured"] == pytest.approx(0.6) and "25% short" in py["note"]
    lines = report.target_lines(list(t.values()))
    assert any(line.startswith("MISS") and "1.50x (target >= 3.0x; 50% short" in line
               for line in lines)  # fmt: skip

    cases["l2tpv3_cy_esp"] = _case(2.0, datapath="compiled")
    t = _by_name(report.targets(cases))
    assert t["Cython + ESP TCP vs OpenVPN AES-256-GCM"]["pass"] is True
    assert "note" not in t["Cython + ESP TCP vs OpenVPN AES-256-GCM"]
    assert t["Cython + ESP TCP vs VXLAN over wireguard-go"]["pass"] is True


def test_esp_targets_only_when_an_esp_case_ran() -> None:
    names = {t["target"] for t in report.targets({"veth": _case(10.0)})}
    assert not names & {e[0] for e in report.ESP_TARGETS}
    t = _by_name(report.targets({"openvpn_gcm": _case(0.5)}))
    assert t["Cython + ESP TCP vs OpenVPN AES-256-GCM"]["pass"] is None  # not measured


def test_esp_markdown_has_table_targets_note_and_evidence() -> None:
    sa = [{"dir": "out", "spi": 0x100D, "tx_packets": 5, "rx_packets": 0, "drops": {}},
          {"dir": "in", "spi": 0x200D, "tx_packets": 0, "rx_packets": 4,
           "drops": {"auth_failed": 1}}]  # fmt: skip
    cases = {
        "veth": _case(10.0),
        "openvpn_gcm": _case(0.5, label="OpenVPN GCM"),
        "l2tpv3_cy_esp": _case(0.75, label="Cy ESP", datapath="python", evidence={"end1": sa}),
        "l2tpv3_cy": _case(5.0, label="not an ESP case"),
    }
    results = {
        "meta": {
            "started": "2026-12-05T16:00:00Z",
            "kernel": "k",
            "cpus": 2,
            "loadavg_at_end": [3.0, 2.0, 1.0],
            "reps": 2,
            "tcp_seconds": 3,
            "udp_seconds": 2,
            "pings": 50,
            "openvpn": "OpenVPN 2.6",
            "note": "2 cores shared with other agents",
        },
        "cases": cases,
        "targets": report.targets(cases),
    }
    md = report.esp_markdown(results)
    assert "| OpenVPN GCM |" in md and "| Cy ESP |" in md
    assert "not an ESP case" not in md
    assert "TCP vs OpenVPN-GCM" in md
    assert "**2 cores shared with other agents**" in md
    assert "50% short" in md
    assert "end1 SA out spi 0x100d: 5 packets" in md
    assert "end1 SA in spi 0x200d: 4 packets (dropped: auth_failed 1)" in md


def test_command_line_keeps_the_note_out() -> None:
    from bench.run import command_line

    assert command_line(["--esp", "--note", "busy", "--reps", "2"]) == "bench/run.py --esp --reps 2"
    assert command_line(["--note=busy", "--esp"]) == "bench/run.py --esp"


def test_openvpn_evidence_line() -> None:
    case = _case(0.5, label="OpenVPN GCM",
                 evidence={"end1": "Data Channel: cipher 'AES-256-GCM', peer-id: 0"})  # fmt: skip
    assert report.evidence_lines({"openvpn_gcm": case}) == [
        "OpenVPN GCM: end1 Data Channel: cipher 'AES-256-GCM', peer-id: 0"
    ]


def test_partial_run_keeps_latest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The chart is matplotlib's (the bench extra, not the test one): its file is enough.
    monkeypatch.setattr(report, "chart", lambda results, path: path.write_bytes(b"png"))
    results = {"meta": {"started": "2026-12-05T16:00:00Z", "kernel": "k", "cpus": 2},
               "cases": {"veth": _case(10.0)}}  # fmt: skip
    written = report.write(results, tmp_path, latest=False)
    assert [p.name for p in written] == ["20261205T160000Z.json", "20261205T160000Z.png"]
    assert not (tmp_path / "latest.json").exists()
    report.write(results, tmp_path)
    assert (tmp_path / "latest.json").exists()
