"""Go's text/tabwriter for tables whose rows have the same number of cells (no nested column blocks)."""

from __future__ import annotations


def table(rows: list[list[str]], minwidth: int, padding: int) -> str:
    """tabwriter.NewWriter(w, minwidth, _, padding, ' ', 0) fed `cell\\tcell\\t...\\tlast` lines: every cell but a
    row's last is padded to its column's widest cell plus `padding` (at least `minwidth`); the last is written as it
    is, trailing spaces included."""
    widths = [max(minwidth, max(len(r[c]) for r in rows) + padding) for c in range(len(rows[0]) - 1)]
    return "".join("".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + r[-1] + "\n" for r in rows)
