"""Loaders for the field's public data formats, from local files (nothing is downloaded).

    from obliviate.data.loaders import load_external
    bench = load_external("~/data/TOFU", "tofu", forget_split="forget05", retain_split="retain95")
    obliviate run --set data.path=~/data/TOFU --set data.forget_split=forget05 --set data.retain_split=retain95

TOFU and MUSE become a `Benchmark` (the pipeline then trains, unlearns and evaluates on them);
WMDP-style multiple-choice files are evaluated by choice log-likelihood (`load_choices`,
`eval.multiple_choice`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from obliviate.data.benchmark import Benchmark
from obliviate.data.loaders.muse import load_muse
from obliviate.data.loaders.records import read_records
from obliviate.data.loaders.tofu import load_tofu
from obliviate.data.loaders.wmdp import load_choices
from obliviate.errors import ObliviateError

FORMATS = ("tofu", "muse")

__all__ = ["FORMATS", "detect_format", "files_fingerprint", "load_choices", "load_external", "load_muse",
           "load_tofu", "read_records"]


def detect_format(path: Path) -> str:
    """'muse' for a folder with raw/ or knowmem/, 'tofu' for one with forget*.json(l) files."""
    if (path / "knowmem").is_dir() or (path / "raw").is_dir():
        return "muse"
    if any(path.glob("forget*.json")) or any(path.glob("forget*.jsonl")):
        return "tofu"
    raise ObliviateError(f"cannot tell the format of {path}: expected TOFU split files (forget10.json, "
                         "retain90.json) or MUSE folders (raw/, knowmem/); set data.format=tofu or muse")


def load_external(path: str | Path, fmt: str = "auto", forget_split: str | None = None,
                  retain_split: str | None = None, seed: int = 0) -> Benchmark:
    directory = Path(path).expanduser()
    if not directory.exists():
        raise ObliviateError(f"data.path {directory} does not exist; point it at a local TOFU or MUSE folder")
    fmt = detect_format(directory) if fmt == "auto" else fmt
    if fmt == "tofu":
        return load_tofu(directory, forget_split or "forget10", retain_split or "retain90", seed=seed)
    if fmt == "muse":
        if forget_split or retain_split:
            raise ObliviateError("data.forget_split / data.retain_split apply to TOFU; MUSE reads "
                                 "raw/forget.txt, raw/retain*.txt and knowmem/{forget,retain}_qa.json")
        return load_muse(directory, seed=seed)
    raise ObliviateError(f"unknown data.format {fmt!r}; use one of auto, {', '.join(FORMATS)}")


def files_fingerprint(path: str | Path) -> str:
    """A hash of every file's name, size and modification time under `path`: a cache key that
    changes when the user's data changes."""
    root = Path(path).expanduser()
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(root) if root.is_dir() else p.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:12]
