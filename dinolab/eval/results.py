"""Every evaluation leaves the same two files: `<name>.json` (all numbers) and `<name>.md`."""

from __future__ import annotations

import json
from pathlib import Path


def write_results(out_dir: str | Path, name: str, result: dict, table: str) -> dict[str, str]:
    """Write `<name>.json` and `<name>.md` atomically into out_dir; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for suffix, text in (("json", json.dumps(result, indent=2)), ("md", table)):
        path = out_dir / f"{name}.{suffix}"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        paths[suffix] = str(path)
    return paths


def markdown_table(title: str, header: list[str], rows: list[list[object]]) -> str:
    """A titled markdown table; floats with two decimals."""

    def cell(v: object) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
