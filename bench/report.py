"""Medians, ranges and within-round ratios, printed as tables and saved under bench/results/."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def spread(values: Sequence[float | None], digits: int = 0) -> str:
    """`median (min-max)`, or the single value, or `-` when nothing was measured."""
    got = [v for v in values if v is not None]
    if not got:
        return "-"
    fmt = f"{{:,.{digits}f}}"
    median = fmt.format(statistics.median(got))
    if len(got) == 1:
        return median
    return f"{median} ({fmt.format(min(got))}-{fmt.format(max(got))})"


def ratios(rounds: list[dict[str, dict[str, Any]]], name: str, base: str, key: str) -> list[float]:
    """`name`'s `key` over `base`'s, computed within each round (same machine state)."""
    out = []
    for runs in rounds:
        a, b = runs.get(name, {}).get(key), runs.get(base, {}).get(key)
        if a and b:
            out.append(a / b)
    return out


def column(rounds: list[dict[str, dict[str, Any]]], name: str, key: str) -> list[float | None]:
    return [runs[name].get(key) for runs in rounds if name in runs]


class Table:
    """A markdown table that also prints aligned to the terminal."""

    def __init__(self, title: str, header: Sequence[str]) -> None:
        self.title = title
        self.header = list(header)
        self.rows: list[list[str]] = []
        self.notes: list[str] = []

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.header) + " |"]
        lines.append("|" + "|".join("---" for _ in self.header) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        lines += [""] + [f"{note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def text(self) -> str:
        widths = [
            max(len(self.header[i]), *(len(r[i]) for r in self.rows)) if self.rows else len(h)
            for i, h in enumerate(self.header)
        ]
        out = [self.title, "  ".join(h.ljust(w) for h, w in zip(self.header, widths, strict=True))]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in self.rows]
        out += [f"  {note}" for note in self.notes]
        return "\n".join(out) + "\n"


class Report:
    """Collects tables and raw data; writes `<stamp>.json`/`.md` and `latest.*`."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.tables: list[Table] = []
        self.data: dict[str, Any] = {}
        self.failures: list[str] = []

    def table(self, table: Table) -> None:
        self.tables.append(table)
        print("\n" + table.text(), flush=True)

    def fail(self, what: str) -> None:
        self.failures.append(what)
        print(f"CHECK FAILED: {what}", flush=True)

    def save(self, out: Path | None = None) -> Path:
        out = out or RESULTS
        out.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        doc = {"settings": self.settings, "failures": self.failures, **self.data}
        md = "\n".join(t.markdown() for t in self.tables)
        header = "## evkafka benchmark\n\n" + "".join(
            f"- {k}: {v}\n" for k, v in self.settings.items()
        )
        if self.failures:
            header += "".join(f"- **check failed**: {f}\n" for f in self.failures)
        for name in (stamp, "latest"):
            (out / f"{name}.json").write_text(json.dumps(doc, indent=1, default=str))
            (out / f"{name}.md").write_text(header + "\n" + md)
        return out / f"{stamp}.md"
