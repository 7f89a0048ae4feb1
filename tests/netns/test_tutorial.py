"""docs/tutorial.md, run as a student would type it: every ```console block's `# `
commands in order, in one bash shell (so `&`, `$!`, variables and functions carry over),
checking the output shown under each command.

The format (described at the top of the tutorial): a line `# CMD` is a command, lines
`> ...` after it continue it; the other lines are its output, each of which must appear
in the real output in that order (whitespace collapsed, `...` matching anything; a line
of only `...` matches nothing in particular). `(exit status N)` says the command fails
with N; any other non-zero status fails the test. `<!-- check: REGEX -->` right after a
block must match the output of the block's last command. Blocks marked
```` ```console requires=netem ```` run only when the kernel has the netem qdisc.

The namespaces `tut-a`, `tut-b`, `tut-h` are renamed with the run's prefix (they never
clash with another run, and remove_stale_namespaces() knows them); whatever the page's
own clean-up leaves is removed here: processes in them by PID, then the namespaces.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.netns import PREFIX, require_root, sh, workdir

pytestmark = pytest.mark.root

DOC = Path(__file__).resolve().parents[2] / "docs" / "tutorial.md"
NAMESPACES = ("tut-a", "tut-b", "tut-h")
MARK = "__l2tpv3_tutorial_done__"
EXIT = re.compile(r"^\(exit status (\d+)\)$")
COMMAND_TIMEOUT = 90.0


@dataclass
class Command:
    text: str
    expected: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    requires: str | None = None
    line: int = 0


def parse(doc: str) -> list[Command]:
    """The commands of the page's console blocks, in order."""
    commands: list[Command] = []
    lines = doc.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^```console(?:\s+requires=(\w+))?\s*$", lines[i])
        if not m:
            check = re.match(r"^<!-- check: (.*) -->$", lines[i])
            if check and commands:
                commands[-1].checks.append(check.group(1))
            i += 1
            continue
        requires = m.group(1)
        i += 1
        while i < len(lines) and lines[i] != "```":
            line = lines[i]
            if line.startswith("# "):
                commands.append(Command(line[2:], requires=requires, line=i + 1))
            elif line.startswith("> ") and commands:
                commands[-1].text += "\n" + line[2:]
            elif commands:
                commands[-1].expected.append(line)
            i += 1
        i += 1
    return commands


def _norm(text: str) -> str:
    return " ".join(text.split())


def _pattern(expected: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in _norm(expected).split("...")]
    return re.compile("^" + ".*".join(parts) + "$")


def match_output(expected: list[str], output: str) -> str | None:
    """None when every expected line appears in order, else what is missing."""
    got = [_norm(x) for x in output.splitlines()]
    pos = 0
    for want in expected:
        if want.strip() == "..." or EXIT.match(want.strip()):
            continue
        pat = _pattern(want)
        while pos < len(got) and not pat.match(got[pos]):
            pos += 1
        if pos == len(got):
            return f"line not found (in order): {want!r}"
        pos += 1
    return None


def test_output_matching_finds_missing_and_misordered_lines() -> None:
    out = "alpha 1\nbeta  2 gamma\ndelta\n"
    assert match_output(["alpha 1", "...", "beta 2 ...", "delta"], out) is None
    assert match_output(["beta ...", "alpha 1"], out) is not None
    assert match_output(["epsilon"], out) is not None
    cmds = parse("x\n```console\n# a \\\n>  b\nout\n(exit status 1)\n```\n<!-- check: o -->\n")
    assert [c.text for c in cmds] == ["a \\\n b"]
    assert cmds[0].expected == ["out", "(exit status 1)"] and cmds[0].checks == ["o"]


class Shell:
    """One bash, fed one command at a time; output and exit status per command."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd, start_new_session=True,
        )  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, text: str, timeout: float = COMMAND_TIMEOUT) -> tuple[str, int]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{text}\n__rc=$?; printf '\\n{MARK} %s\\n' \"$__rc\"\n")
        self.proc.stdin.flush()
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no end after {timeout} s; output so far: {''.join(out)}"
                                   ) from None  # fmt: skip
            if line is None:
                raise RuntimeError(f"the shell exited; output: {''.join(out)}")
            if line.startswith(MARK):
                text_out = "".join(out)
                # The marker follows a newline of its own.
                return text_out[:-1] if text_out.endswith("\n") else text_out, int(line.split()[1])
            out.append(line)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no end after {timeout} s; output so far: {''.join(out)}")

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _cleanup(names: list[str]) -> None:
    """Processes left in the namespaces (by PID), then the namespaces."""
    listed = sh("ip", "netns", "list", check=False).stdout
    for name in names:
        if not re.search(rf"^{re.escape(name)}(\s|$)", listed, re.M):
            continue
        pids = sh("ip", "netns", "pids", name, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while sh("ip", "netns", "pids", name, check=False).stdout.split() and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        sh("ip", "netns", "del", name, check=False)


def _has_netem() -> bool:
    """Whether this kernel has the netem qdisc (tried on a veth in a namespace of our own)."""
    name = f"{PREFIX}-netem"
    try:
        sh("ip", "netns", "add", name)
        sh("ip", "-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        probe = sh("ip", "netns", "exec", name, "tc", "qdisc", "add", "dev", "v0", "root",
                   "netem", "delay", "1ms", check=False)  # fmt: skip
        return probe.returncode == 0
    finally:
        sh("ip", "netns", "del", name, check=False)


def test_tutorial_runs_as_written(impl: str) -> None:
    require_root()
    problems = [t for t in ("tcpdump", "tc", "curl", "bash") if shutil.which(t) is None]
    if problems:
        msg = "the tutorial needs " + ", ".join(problems)
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    commands = parse(DOC.read_text())
    assert len(commands) > 50, "the tutorial's console blocks were not found"
    renamed = {ns: f"{PREFIX}-{ns}" for ns in NAMESPACES}
    env = dict(os.environ)
    # The student's activated virtual environment: l2tpv3, l2tpv3d and python3 from it.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if impl == "python":
        env["L2TPV3_NO_EXTENSIONS"] = "1"
    else:
        env.pop("L2TPV3_NO_EXTENSIONS", None)
    repo = str(DOC.parents[1])
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    available = {"netem": _has_netem()}
    skipped: list[tuple[str, int]] = []
    with workdir() as tmp:
        env["TMPDIR"] = str(tmp)
        shell = Shell(env, tmp)
        outputs: list[tuple[str, str]] = []
        try:
            for cmd in commands:
                if cmd.requires is not None:
                    assert cmd.requires in available, f"line {cmd.line}: {cmd.requires}"
                    if not available[cmd.requires]:
                        skipped.append((cmd.requires, cmd.line))
                        continue
                text = cmd.text
                for old, new in renamed.items():
                    text = re.sub(rf"\b{old}\b", new, text)
                out, rc = shell.run(text)
                where = f"docs/tutorial.md line {cmd.line}: {cmd.text}\n--- output:\n{out}"
                want_rc = [int(m.group(1)) for e in cmd.expected if (m := EXIT.match(e.strip()))]
                assert rc == (want_rc[0] if want_rc else 0), f"exit status {rc}; {where}"
                assert "Traceback" not in out, where
                missing = match_output(cmd.expected, out)
                assert missing is None, f"{missing}; {where}"
                for check in cmd.checks:
                    assert re.search(check, out, re.M), f"check {check!r} failed; {where}"
                outputs.append((cmd.text, out))
            for log in ("a.log", "b.log"):
                # The daemons ran the implementation under test, and never failed.
                text = next(tmp.glob(f"tmp*/{log}")).read_text()
                assert f"{impl} data path" in text, text
                assert "Traceback" not in text, text
        finally:
            shell.close()
            _cleanup(list(renamed.values()))
    _replay_matches_daemon(outputs)
    listed = sh("ip", "netns", "list").stdout
    assert not any(name in listed for name in renamed.values())
    for what in sorted({w for w, _ in skipped}):
        lines = ", ".join(str(n) for w, n in skipped if w == what)
        print(f"\n[{impl}] {what} is not available here: docs/tutorial.md lines {lines} "
              "did not run")  # fmt: skip


def _replay_matches_daemon(outputs: list[tuple[str, str]]) -> None:
    """`diagrams timeline` replays the captured arrivals through the project's sequencer;
    its counters must be the ones the daemon counted for the same packets."""
    shows = [o for t, o in outputs if t.startswith("l2tpv3 -S b.sock -s show session")]
    replays = [o for t, o in outputs if "diagrams timeline" in t]
    assert len(replays) == 2
    for replay in replays:
        m = re.search(r"replayed counters: rx_packets (\d+) rx_errors (\d+) rx_seq_discards "
                      r"(\d+) rx_oos_packets (\d+)", replay)  # fmt: skip
        assert m, replay
        want = (f"rx_packets {m.group(1)} ", f"rx_errors {m.group(2)} ",
                f"rx_seq_discards {m.group(3)}", f"rx_oos_packets {m.group(4)} ")  # fmt: skip
        assert any(all(w in _norm(s) + " " for w in want) for s in shows), (replay, shows)
