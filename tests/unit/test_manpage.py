"""l2tpv3(8) and l2tpv3d(8) (issue 12 item 5): generated from what ``--help`` prints, the
committed pages current, every option and keyword in them, and roff that renders
without a warning."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from l2tpv3.cli import main as client
from l2tpv3.cli import sa
from l2tpv3.cli.grammar import UsageError, parse
from l2tpv3.daemon.main import build_parser
from l2tpv3.errors import ConfigError, MissingArgument
from l2tpv3.tools.manpage import PAGES
from l2tpv3.tools.usage import Command, parse_usage

CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "man"
USAGE = parse_usage(client.USAGE)


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is not installed (.ci/run installs it)")
        pytest.skip(f"{tool} is not installed")
    return path


@pytest.mark.parametrize("name", sorted(PAGES))
def test_committed_page_is_current(name: str) -> None:
    """Change the usage text or the daemon's options, then run
    ``python -m l2tpv3.tools.manpage contrib/man``."""
    assert (CONTRIB / name).read_text() == PAGES[name](), (
        f"contrib/man/{name} is stale: run python -m l2tpv3.tools.manpage contrib/man"
    )


def _rendered(name: str) -> str:
    groff = need("groff")
    proc = subprocess.run(
        [groff, "-man", "-Tutf8", "-ww", "-rLL=200n", str(CONTRIB / name)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "GROFF_NO_SGR": "1"},
    )  # fmt: skip
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    # Bold and underline by overstriking, as grotty writes them.
    return re.sub(".\b", "", proc.stdout)


def test_daemon_page_has_every_option() -> None:
    text = _rendered("l2tpv3d.8")
    parser = build_parser()
    for action in parser._actions:  # argparse's list, as the generator reads it
        for option in action.option_strings:
            assert option in text, option
        assert action.help and " ".join(action.help.split()[:3]) in " ".join(text.split())
    assert "--metrics ADDR:PORT" in text


def test_client_page_has_every_command_and_keyword() -> None:
    text = _rendered("l2tpv3.8")
    flat = " ".join(text.split())
    for command in USAGE.commands:
        assert "l2tpv3 [ OPTIONS ] " + " ".join(command.words) in flat
        for keyword in command.keywords:
            assert keyword in text
    for name in USAGE.definitions:
        assert name in text
    for section in ("SYNOPSIS", "DESCRIPTION", "COMMAND SYNTAX", "EXIT STATUS", "SEE ALSO"):
        assert f"\n{section}\n" in text


@pytest.mark.parametrize(
    "command",
    [c for c in USAGE.commands if c.words[0] in ("add", "del", "show")],
    ids=lambda c: " ".join(c.words),
)
def test_usage_keywords_are_the_grammars(command: Command) -> None:
    """Every keyword the usage text (so the page and the completion) offers is one the
    parser takes: given alone it is never an unknown option."""
    for keyword, value in command.keywords.items():
        choices = USAGE.choices(value)
        examples = {"ADDR": "192.0.2.1", "HEXSTR": "00112233", "NAME": "pw0", "MS": "10"}
        arg = choices[0] if choices else examples.get(str(value), "1")
        given = [keyword] if value == "" else [keyword, arg]  # "": a flag (`[ esn ]`)
        if keyword == "pop":
            given = ["vlan", "5", "pop"]  # `vlan VID [ pop ]`: pop modifies vlan
        try:
            if command.words[1:] == ("sa",):
                # `add|del|show sa` has its own parser (cli/sa.py, `ip xfrm state` style).
                # `encap espinudp SPORT DPORT` is one option of four words.
                words = (
                    ["encap", "espinudp", "4500", "4500"]
                    if keyword in ("encap", "espinudp")
                    else given
                )
                sa.parse_sa(command.words[0], words, stdin=lambda: "0x00")
            else:
                parse([*command.words, *given])
        except (MissingArgument, ConfigError):
            pass  # the command needs more, but the keyword was taken
        except (UsageError, sa.SaUsageError) as exc:
            raise AssertionError(f"{keyword}: {exc}") from None
