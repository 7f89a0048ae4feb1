"""``pip install .`` installs the manual pages and the bash completion (issue 12 item 5):
a wheel built from a copy of the tree (pure Python, ``L2TPV3_NO_EXTENSIONS=1``, so no C
compiler runs), installed into a new virtual environment, where ``man`` finds the pages
through the venv's ``bin`` on PATH and bash completes with the installed script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.so", ".*_cache",
    ".hypothesis", "bench", "fuzz", "tests", "interop",
)  # fmt: skip


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is not installed (.ci/run installs it)")
        pytest.skip(f"{tool} is not installed")
    return path


def run(*args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, f"{' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A venv with the package installed from a wheel of this tree."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)
    env = {**os.environ, "L2TPV3_NO_EXTENSIONS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        "-w", str(tmp / "dist"), str(src), env=env)  # fmt: skip
    (wheel,) = (tmp / "dist").glob("l2tpv3-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for path in ("share/man/man8/l2tpv3.8", "share/man/man8/l2tpv3d.8",
                 "share/bash-completion/completions/l2tpv3",
                 "share/bash-completion/completions/l2tpv3d"):  # fmt: skip
        assert any(n.endswith(f".data/data/{path}") for n in names), (path, names)
    prefix = tmp / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(prefix))
    run(sys.executable, "-m", "pip", "--python", str(prefix / "bin" / "python"), "install",
        "-q", "--no-deps", "--no-index", str(wheel), env=env)  # fmt: skip
    yield prefix


def test_man_finds_the_pages_beside_the_venvs_bin(venv: Path) -> None:
    man = need("man")
    need("groff")
    env = {**os.environ, "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "MANWIDTH": "100"}
    env.pop("MANPATH", None)
    for page in ("l2tpv3", "l2tpv3d"):
        assert run(man, "-w", page, env=env).strip() == str(venv / f"share/man/man8/{page}.8")
    # And what a user reads: the page, rendered.
    text = run(man, "-P", "cat", "l2tpv3d", env={**env, "MAN_KEEP_FORMATTING": ""})
    assert "l2tpv3d - Userspace L2TPv3 Ethernet pseudowire daemon" in text
    assert "--metrics ADDR:PORT" in text
    text = run(man, "-M", str(venv / "share/man"), "-P", "cat", "l2tpv3", env=env)
    assert "COMMAND SYNTAX" in text and "peer-config" in text


def test_man_renders_the_installed_page(venv: Path) -> None:
    man = need("man")
    text = run(man, "-l", "-P", "cat", str(venv / "share/man/man8/l2tpv3.8"),
               env={**os.environ, "MANWIDTH": "100"})  # fmt: skip
    assert "l2tpv3 [ OPTIONS ] add tunnel" in text


def test_bash_completes_with_the_installed_script(venv: Path) -> None:
    script = venv / "share/bash-completion/completions/l2tpv3"
    out = run("bash", "--norc", "--noprofile", "-c",
              f'source {script}; COMP_WORDS=(l2tpv3 add t); COMP_CWORD=2; _l2tpv3; '
              'echo "${COMPREPLY[*]}"')  # fmt: skip
    assert out.split() == ["tunnel"]
    # The console scripts came with it.
    assert (venv / "bin" / "l2tpv3").exists() and (venv / "bin" / "l2tpv3d").exists()
