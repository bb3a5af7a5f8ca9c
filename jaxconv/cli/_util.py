"""What the subcommands share: help texts, output streams, a progress bar and the table
printer."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import TextIO

#: The name that means standard output where a command takes an output file.
STDOUT = "-"

_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`]+)`")


def plain(text: str) -> str:
    """`text` without reST markup, for a terminal: double backticks dropped, and roles such
    as :mod:`jaxconv.verify` reduced to their target's name."""
    return _ROLE.sub(r"\1", text).replace("``", "")


def description(doc: str) -> str:
    """A module docstring as an argparse description (for
    ``argparse.RawDescriptionHelpFormatter``, which keeps its examples' layout)."""
    return plain(doc).strip()


def human_stream(**outputs: str | None) -> TextIO:
    """Where the human-readable text goes: standard error when one of the machine-readable
    `outputs` (flag name -> path) is ``-``, so that standard output holds only that
    output; standard output otherwise."""
    return sys.stderr if STDOUT in outputs.values() else sys.stdout


def stdout_clash(command: str, **outputs: str | None) -> str | None:
    """The error text when more than one of `outputs` (flag name -> path) is ``-``."""
    flags = [f"--{k}" for k, v in outputs.items() if v == STDOUT]
    if len(flags) < 2:
        return None
    return (f"jaxconv {command}: only one output can be '-' (standard output), got "
            f"{' '.join(f'{f} -' for f in flags)}.")


def write_text(path: str | None, text: str) -> None:
    """`text` into the file `path`, or to standard output when `path` is ``-``."""
    if path is None:
        return
    if path == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with open(path, "w", newline="") as f:
        f.write(text)


def progress_bar(items: list, desc: str, unit: str = "it") -> Iterable:
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, unit=unit, file=sys.stderr, leave=False)


def table(header: list[str], rows: list[list[str]]) -> tuple[str, str]:
    """The same table as aligned text and as Markdown."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    numeric = [all(_is_number(r[i]) for r in rows) for i in range(len(header))]
    line = lambda cells: "  ".join(c.rjust(w) if num else c.ljust(w)
                                   for c, w, num in zip(cells, widths, numeric, strict=True))
    text = "\n".join([line(header).rstrip(), "-" * len(line(header)),
                      *(line(r).rstrip() for r in rows)])
    md = "\n".join(["| " + " | ".join(header) + " |",
                    "|" + "|".join("---:" if num else "---" for num in numeric) + "|",
                    *("| " + " | ".join(r) + " |" for r in rows)])
    return text, md


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return cell == "-"
    return True
