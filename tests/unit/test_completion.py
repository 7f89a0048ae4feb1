"""Bash completion of ``l2tpv3`` and ``l2tpv3d`` (issue 12 item 5): generated from the
usage text and the parser, the committed scripts current, and real lines completed by
sourcing them in bash."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from l2tpv3.cli import main as client
from l2tpv3.tools.completion import SCRIPTS
from l2tpv3.tools.usage import parse_usage

CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "bash-completion"

# Complete the last word of a line (COMP_WORDS/COMP_CWORD as bash sets them on <TAB>).
DRIVER = """
source "$1"; shift
COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
"_$1"
printf '%s\\n' "${COMPREPLY[@]}"
"""


def complete(*words: str, scripts: Path = CONTRIB) -> list[str]:
    bash = shutil.which("bash")
    assert bash is not None
    proc = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", DRIVER, "bash", str(scripts / words[0]), *words],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return [w for w in proc.stdout.splitlines() if w]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_committed_script_is_current(name: str) -> None:
    assert (CONTRIB / name).read_text() == SCRIPTS[name](), (
        f"contrib/bash-completion/{name} is stale: run "
        "python -m l2tpv3.tools.completion contrib/bash-completion"
    )


@pytest.mark.parametrize(
    ("line", "offered"),
    [
        ("l2tpv3 add t", ["tunnel"]),
        ("l2tpv3 -j s", ["show"]),
        ("l2tpv3 -S /run/x.sock -s show ", ["tunnel", "session"]),
        ("l2tpv3 add tunnel encap ", ["ip", "udp"]),
        ("l2tpv3 add tunnel udp_csum o", ["on", "off"]),
        ("l2tpv3 add tunnel tunnel_id 1 peer_tunnel_id 2 udp", ["udp_sport", "udp_dport",
         "udp_csum", "udp6_csum_tx", "udp6_csum_rx"]),
        ("l2tpv3 add tunnel udp_sport 1 udp_", ["udp_dport", "udp_csum"]),
        ("l2tpv3 a session l2spec_type ", ["none", "default"]),
        ("l2tpv3 add session seq ", ["none", "send", "recv", "both"]),
        ("l2tpv3 add session seq_policy r", ["rfc3931"]),
        ("l2tpv3 add session tunnel_id ", []),
        ("l2tpv3 add session tunnel_id 1 se", ["session_id", "seq", "seq_policy"]),
        ("l2tpv3 del session ", ["tunnel_id", "session_id"]),
        ("l2tpv3 l2tp add tunnel encap i", ["ip"]),
        ("l2tpv3 peer-config --for ", ["linux", "qemu", "cisco", "tshark"]),
        ("l2tpv3 peer-config --", ["--for", "--config", "--id"]),
        ("l2tpv3d --m", ["--metrics"]),
        ("l2tpv3d --no", ["--no-offload"]),
        ("l2tpv3d --user ro", ["root"]),
        ("l2tpv3d --metrics ", []),
        ("l2tpv3 capture tunnel_id 1 ", ["session_id", "-w", "-c", "--inner"]),
        ("l2tpv3 capture tunnel_id 1 --inner -", ["-w", "-c"]),
        ("l2tpv3 add sa esn r", ["replay_window"]),
        ("l2tpv3 add session vlan 5 pop tr", ["trunk"]),
    ],
)  # fmt: skip
def test_completes(line: str, offered: list[str]) -> None:
    assert complete(*line.split(" ")) == offered


def test_commands_and_options_are_the_usage_texts() -> None:
    usage = parse_usage(client.USAGE)
    verbs = list(dict.fromkeys(c.words[0] for c in usage.commands))
    assert {"add", "del", "show", "peer-config"} <= set(verbs)
    assert complete("l2tpv3", "") == [*verbs, "l2tp", "help"]
    options = complete("l2tpv3", "-")
    assert options == list(usage.global_options())
    assert {"-S", "-j", "-json", "-s", "-statistics", "-h", "-help", "-V"} <= set(options)


def test_files_after_file_options(tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text("")
    assert complete("l2tpv3d", "--config", f"{tmp_path}/si") == [f"{tmp_path}/site.toml"]
    assert complete("l2tpv3", "-S", f"{tmp_path}/si") == [f"{tmp_path}/site.toml"]
