"""The manual pages l2tpv3(8) and l2tpv3d(8), generated from what ``--help`` prints.

l2tpv3(8) comes from the usage text ``l2tpv3 help`` prints (:data:`l2tpv3.cli.main.USAGE`,
read back by :mod:`l2tpv3.tools.usage`), the client's and the grammar's docstrings
(command syntax, exit status) and the ``peer-config`` help; l2tpv3d(8) from the daemon's
argparse parser (:func:`l2tpv3.daemon.main.build_parser`). No option list is written
twice: change the usage text or the parser and regenerate:

    python -m l2tpv3.tools.manpage contrib/man

The pages are committed (an isolated ``pip install .`` build cannot import the package
to make them) and installed into ``share/man/man8``; tests/unit/test_manpage.py fails
when they differ from what this module makes.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from l2tpv3 import __version__
from l2tpv3.cli import grammar
from l2tpv3.cli import main as client
from l2tpv3.constants import CONTROL_SOCKET_ENV, DEFAULT_CONTROL_SOCKET
from l2tpv3.daemon import main as daemon
from l2tpv3.tools.usage import parse_usage

__all__ = ["PAGES", "l2tpv3_page", "l2tpv3d_page", "main"]


def _esc(text: str) -> str:
    """Plain text for roff: backslashes, hyphens (as minus signs: options copy and
    paste), and a leading control character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def _inline(text: str) -> str:
    """A docstring's markup: ``code`` in bold, :role:`x` as x."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    parts = re.split(r"``(.+?)``", text)
    return "".join(f"\\fB{_esc(p)}\\fR" if i % 2 else _esc(p) for i, p in enumerate(parts))


def _paragraphs(doc: str) -> list[str]:
    """Paragraphs and list items of a docstring (dedented, lines joined)."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", doc.strip()):
        lines = [ln.strip() for ln in block.splitlines()]
        item: list[str] = []
        for ln in lines:
            if ln.startswith("- ") and item:
                out.append(" ".join(item))
                item = []
            item.append(ln)
        out.append(" ".join(item))
    return out


def _roff_paragraphs(paragraphs: list[str]) -> str:
    out = []
    for para in paragraphs:
        if para.startswith("- "):
            out.append(".IP \\(bu 2\n" + _inline(para[2:]))
        elif para.startswith("    "):
            out.append(".PP\n.nf\n" + _esc(para.strip()) + "\n.fi")
        else:
            out.append(".PP\n" + _inline(para))
    return "\n".join(out) + "\n"


def _synopsis_line(line: str) -> str:
    """One line of iproute2 usage notation: keywords bold, VALUES italic."""

    def word(m: re.Match[str]) -> str:
        w = m[0]
        if re.fullmatch(r"[A-Z][A-Z_0-9]*", w):
            return f"\\fI{w}\\fR"
        if re.fullmatch(r"-{0,2}[a-z][a-zA-Z0-9_-]*(\[[a-z]+\])?", w):
            return f"\\fB{_esc(w)}\\fR"
        return _esc(w)

    return re.sub(r"[^\s\[\]{}|]+", word, line)


def _head(name: str, summary: str) -> str:
    return (
        f'.TH {name.upper()} 8 "" "{name} {__version__}" "System Manager\'s Manual"\n'
        f".SH NAME\n{name} \\- {_esc(summary)}\n"
    )


def l2tpv3_page() -> str:
    usage = parse_usage(client.USAGE)
    doc = client.__doc__ or ""
    first, _, body = doc.strip().partition("\n\n")
    description, _, status = body.partition("Exit status:")
    status_items, _, diagnostics = status.strip().partition("\n\n")
    out = _head("l2tpv3", "configure l2tpv3d's L2TPv3 pseudowires the way ip l2tp does")
    out += ".SH SYNOPSIS\n.nf\n"
    for command in usage.commands:
        for i, line in enumerate(command.lines):
            line = re.sub(r"^(Usage:)?\s*", "", line) if i == 0 else "    " + line.strip()
            out += _synopsis_line(line) + "\n"
    out += ".fi\n"
    summary = first.split(": ", 1)[-1]
    out += ".SH DESCRIPTION\n" + _roff_paragraphs([summary[:1].upper() + summary[1:]])
    out += _roff_paragraphs(_paragraphs(description))
    out += ".SH ARGUMENTS\n"
    for name, text in usage.definitions.items():
        out += f".TP\n\\fI{name}\\fR\n{_synopsis_line(text)}\n"
    out += ".SH COMMAND SYNTAX\n"
    out += _roff_paragraphs(_paragraphs((grammar.__doc__ or "").split("\n\n", 1)[-1]))
    out += ".SH PEER-CONFIG\n.nf\n"
    peer_usage, _, peer_text = client.PEER_CONFIG_USAGE.partition("\n\n")
    for line in peer_usage.splitlines():
        out += _synopsis_line(re.sub(r"^(Usage:)?\s*", "", line.rstrip())) + "\n"
    out += ".fi\n" + _roff_paragraphs(_paragraphs(peer_text))
    out += ".SH EXIT STATUS\n" + _roff_paragraphs(_paragraphs(status_items))
    out += ".SH DIAGNOSTICS\n" + _roff_paragraphs(_paragraphs(diagnostics))
    out += (
        f".SH ENVIRONMENT\n.TP\n\\fB{CONTROL_SOCKET_ENV}\\fR\n"
        f"l2tpv3d's control socket when \\fB\\-S\\fR is not given "
        f"(else {_esc(DEFAULT_CONTROL_SOCKET)}).\n"
    )
    out += ".SH SEE ALSO\n.BR l2tpv3d (8),\n.BR ip\\-l2tp (8)\n"
    return out


def _option(action: argparse.Action) -> str:
    names = ", ".join(f"\\fB{_esc(s)}\\fR" for s in action.option_strings)
    if action.nargs != 0:
        metavar = action.metavar or (action.dest.upper() if action.option_strings else "")
        names += f" \\fI{_esc(str(metavar))}\\fR"
    return f".TP\n{names}\n{_esc(action.help or '')}\n"


def l2tpv3d_page() -> str:
    parser = daemon.build_parser()
    usage = parser.format_usage().removeprefix("usage: ").strip()
    out = _head("l2tpv3d", (parser.description or "").rstrip("."))
    out += ".SH SYNOPSIS\n.nf\n"
    out += "\n".join(_synopsis_line(ln.strip()) for ln in usage.splitlines()) + "\n.fi\n"
    out += (
        ".SH DESCRIPTION\n"
        f"{_esc(parser.description or '')} It creates the tunnels and sessions of its "
        "\\fB\\-\\-config\\fR file at start, then takes commands from \\fBl2tpv3\\fR(8) on its "
        "control socket; each session is a TAP interface (l2tpeth\\fIN\\fR) carrying "
        "Ethernet frames to the peer over UDP or IP (RFC 3931, RFC 4719).\n"
    )
    out += ".SH OPTIONS\n"
    # argparse has no public list of a parser's actions; its help formatter reads this.
    out += "".join(_option(a) for a in parser._actions)
    out += (
        ".SH SIGNALS\n"
        ".TP\n\\fBSIGTERM\\fR, \\fBSIGINT\\fR\n"
        "Delete every session (and its interface) and tunnel, close the control socket "
        "and the metrics port, and exit with status 0.\n"
        ".TP\n\\fBSIGHUP\\fR\nLogged and ignored: the daemon does not reload.\n"
        ".SH EXIT STATUS\n"
        "0 when stopped by a signal; 2 when it cannot start (one line on stderr: a bad "
        "option, config file or address, a socket or port in use).\n"
        f".SH ENVIRONMENT\n.TP\n\\fB{CONTROL_SOCKET_ENV}\\fR\n"
        f"The control socket when \\fB\\-S\\fR is not given.\n"
        ".TP\n\\fBL2TPV3_NO_EXTENSIONS\\fR\n"
        "When set, run the pure\\-Python data path even where the fast path is built.\n"
        ".TP\n\\fBNOTIFY_SOCKET\\fR, \\fBWATCHDOG_USEC\\fR\n"
        "systemd's readiness and watchdog notifications (sd_notify(3)).\n"
        f".SH FILES\n.TP\n{_esc(DEFAULT_CONTROL_SOCKET)}\nThe default control socket.\n"
        ".SH SEE ALSO\n.BR l2tpv3 (8),\n.BR ip\\-l2tp (8),\n.BR systemd.service (5)\n"
    )
    return out


# File name -> page.
PAGES = {"l2tpv3.8": l2tpv3_page, "l2tpv3d.8": l2tpv3d_page}


def main(argv: list[str] | None = None) -> int:
    """``python -m l2tpv3.tools.manpage DIR``: write the pages into DIR."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m l2tpv3.tools.manpage DIR", file=sys.stderr)
        return 2
    out = Path(args[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, page in PAGES.items():
        (out / name).write_text(page())
    return 0


if __name__ == "__main__":
    sys.exit(main())
