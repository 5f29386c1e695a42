"""The code blocks of docs/*.rst, for the tests that run them (tests/test_docs_*.py)."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"

_BLOCK = re.compile(r"^\.\. code-block:: \S+\n((?:   :\w[\w-]*:.*\n)*)\n((?:(?:   .*)?\n)+)", re.M)


def captioned_blocks(page: str) -> list[tuple[str, str]]:
    """``(caption, code)`` of every top-level ``code-block`` with a ``:caption:`` in docs/<page>, in order."""
    blocks = []
    for match in _BLOCK.finditer((DOCS / page).read_text()):
        options = dict(re.findall(r"^   :([\w-]+):\s*(.*)$", match.group(1), re.M))
        if "caption" in options:
            code = "\n".join(line[3:] for line in match.group(2).split("\n")).strip("\n") + "\n"
            blocks.append((options["caption"], code))
    return blocks


def captioned_block(page: str, caption: str) -> str:
    """The one code block of docs/<page> captioned ``caption``."""
    found = [code for name, code in captioned_blocks(page) if name == caption]
    assert len(found) == 1, f"{len(found)} blocks captioned {caption!r} in docs/{page}"
    return found[0]


def console_output(page: str, command: str) -> list[str]:
    """The lines a ``console`` block of docs/<page> shows after ``$ <command>``."""
    match = re.search(rf"^   \$ {re.escape(command)}\n((?:   [^$].*\n)+)", (DOCS / page).read_text(), re.M)
    assert match, f"no `$ {command}` in docs/{page}"
    return [line[3:] for line in match.group(1).splitlines()]
