"""What the subcommands share: a progress bar and the table printer."""

from __future__ import annotations

import sys
from collections.abc import Iterable


def progress_bar(items: list, desc: str) -> Iterable:
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, file=sys.stderr, leave=False)


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
