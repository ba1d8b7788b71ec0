"""Rewrite a generated block of README.md (between `<!-- NAME:start -->` and `<!-- NAME:end -->`)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def write_block(name: str, text: str, path: Path = README) -> None:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    page = path.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(page):
        raise SystemExit(f"{path} has no {start} ... {end} block to rewrite")
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(pattern.sub(lambda _: f"{start}\n{text}\n{end}", page))
    tmp.replace(path)
