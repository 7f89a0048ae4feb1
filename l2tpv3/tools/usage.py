"""The ``l2tpv3`` usage text (``l2tpv3 help``, :data:`l2tpv3.cli.main.USAGE`) read back as
data: the one source of the manual page l2tpv3(8) and of the bash completion, so that
neither repeats the option lists by hand.

The text is iproute2's usage notation: ``keyword VALUE``, ``[ optional ]``,
``{ a | b }`` for choices, and a ``Where:`` block defining each upper-case VALUE
(``L2SPEC := { none | default }``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Command", "Usage", "parse_usage"]

_PROG_LINE = re.compile(r"^(?:Usage:)?\s*(?P<prog>[a-z0-9-]+) \[ OPTIONS \] (?P<rest>.*)$")
_DEFINITION = re.compile(r"^(?:Where:)?\s+(?P<name>[A-Z_0-9]+)\s*:=\s*(?P<text>.*)$")
_KEYWORD = re.compile(r"^-{0,2}[a-z][a-z0-9_-]*$")


@dataclass(frozen=True, slots=True)
class Command:
    """One stanza: ``words`` (``("add", "tunnel")``), its keywords in order, each with
    its value: a choice list or an upper-case name; ``lines`` as printed."""

    words: tuple[str, ...]
    keywords: dict[str, tuple[str, ...] | str] = field(default_factory=dict)
    lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    prog: str
    commands: tuple[Command, ...]
    # VALUE -> its definition text, in order (``OPTIONS`` included).
    definitions: dict[str, str]

    def choices(self, value: tuple[str, ...] | str) -> tuple[str, ...]:
        """The literal words a value may be (an upper-case name's from its definition;
        none for free text)."""
        if isinstance(value, tuple):
            return value
        text = self.definitions.get(value, "")
        m = re.match(r"\{(.*?)\}", text)
        if m is None:
            return ()
        return tuple(w for w in (a.strip() for a in m[1].split("|")) if _KEYWORD.match(w))

    def global_options(self) -> tuple[str, ...]:
        """``OPTIONS := { -S SOCKET | -j[son] | ... }``: each option's shortest and
        longest spelling (``-j``, ``-json``)."""
        out: list[str] = []
        m = re.match(r"\{(.*)\}", self.definitions.get("OPTIONS", ""))
        for alt in m[1].split("|") if m else ():
            word = alt.split()[0]
            short, _, rest = word.partition("[")
            out.append(short)
            if rest:
                out.append(short + rest.rstrip("]"))
        return tuple(out)


def _tokens(text: str) -> list[str]:
    return re.findall(r"\[|\]|\{|\}|\||[^\s\[\]{}|]+", text)


def _keywords(tokens: list[str]) -> dict[str, tuple[str, ...] | str]:
    out: dict[str, tuple[str, ...] | str] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if not _KEYWORD.match(tok) or i >= len(tokens):
            continue
        if tokens[i] in ("]", "["):
            # `[ esn ]`, `[ --inner ]`, `--overhead [ ... ]`: a flag, no value ("").
            out[tok] = ""
        elif tokens[i] == "{":
            end = tokens.index("}", i)
            out[tok] = tuple(t for t in tokens[i + 1 : end] if t != "|")
            i = end + 1
        elif re.fullmatch(r"[A-Z_0-9]+", tokens[i]):
            out[tok] = tokens[i]
            i += 1
    return out


def parse_usage(text: str) -> Usage:
    """Read a usage text in iproute2's notation."""
    stanzas: list[list[str]] = []
    definitions: dict[str, str] = {}
    prog = ""
    in_where = False
    last_def = ""
    for line in text.splitlines():
        if not line.strip():
            continue
        d = _DEFINITION.match(line)
        if line.startswith("Where:") or (in_where and d):
            in_where = True
            if d is None:
                continue
            last_def = d["name"]
            definitions[last_def] = d["text"].strip()
            continue
        if in_where:
            definitions[last_def] += " " + line.strip()
            continue
        m = _PROG_LINE.match(line)
        if m is not None:
            prog = m["prog"]
            stanzas.append([line])
        elif stanzas:
            stanzas[-1].append(line)
    commands = []
    for lines in stanzas:
        m = _PROG_LINE.match(lines[0])
        assert m is not None
        tokens = _tokens(" ".join([m["rest"], *(ln.strip() for ln in lines[1:])]))
        words = []
        for tok in tokens:
            if not _KEYWORD.match(tok) or tok in ("tunnel_id", "session_id"):
                break
            words.append(tok)
            if len(words) == 2 or tok.startswith("--") or tok == "peer-config":
                break
        # "add tunnel", "del session", "peer-config": the command words, then keywords.
        rest = tokens[tokens.index(words[-1]) + 1 :] if words else tokens
        commands.append(Command(tuple(words), _keywords(rest), tuple(lines)))
    return Usage(prog, tuple(commands), definitions)
