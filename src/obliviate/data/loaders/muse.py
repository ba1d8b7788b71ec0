"""MUSE (Shi et al. 2024, arXiv 2407.06460) from local files, as a `Benchmark`.

    bench = load_muse("~/data/MUSE-News")
    obliviate run --set data.path=~/data/MUSE-News --set data.format=muse

A MUSE directory (the layout of the MUSE-News / MUSE-Books downloads) holds raw text corpora and
knowledge QA:

    raw/forget.txt  raw/retain1.txt  raw/retain2.txt  raw/holdout.txt     plain text (or at the top)
    knowmem/forget_qa.json  knowmem/retain_qa.json                        [{"question", "answer"}, ...]

Raw text is cut into passages of `passage_words` words, which become training texts (the `bios` of
the benchmark: VerbMem continues them). KnowMem QA become the forget / retain QA splits; MUSE has
no paraphrased or false answers, so answers of other questions stand in for the truth ratio.
"""

from __future__ import annotations

import random
from pathlib import Path

from obliviate.data.benchmark import Benchmark
from obliviate.data.loaders.records import first_file, read_records, require
from obliviate.data.loaders.tofu import load_tofu_split
from obliviate.data.world import world_facts
from obliviate.errors import ObliviateError


def passages(text: str, words: int) -> list[str]:
    """Consecutive chunks of `words` words (the last may be shorter), blank text dropped."""
    tokens = text.split()
    return [" ".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]


def _texts(directory: Path, pattern: str) -> list[Path]:
    return sorted(directory.glob(f"raw/{pattern}")) or sorted(directory.glob(pattern))


def _corpus(files: list[Path], split: str, words: int) -> list[dict]:
    out = []
    for f in files:
        chunks = passages(f.read_text(encoding="utf-8"), words)
        out += [{"person": f"{f.stem} passage {i + 1}", "split": split, "text": c} for i, c in enumerate(chunks)]
    return out


def _qa(directory: Path, split: str) -> list[dict]:
    try:
        path = first_file(directory / "knowmem", (f"{split}_qa",), f"MUSE knowmem '{split}'")
    except ObliviateError:
        path = first_file(directory, (f"{split}_qa",), f"MUSE knowmem '{split}' (knowmem/{split}_qa.json)")
    for line, rec in read_records(path):
        require(rec, ("question", "answer"), path, line)
    return load_tofu_split(path, "knowmem", None)


def load_muse(path: str | Path, passage_words: int = 64, seed: int = 0) -> Benchmark:
    """forget / retain QA from knowmem, forget / retain / holdout passages from raw text."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise ObliviateError(f"MUSE data path {directory} is not a directory; point data.path at the folder "
                             "holding raw/forget.txt and knowmem/forget_qa.json")
    forget_txt, retain_txt = _texts(directory, "forget*.txt"), _texts(directory, "retain*.txt")
    if not forget_txt:
        raise ObliviateError(f"{directory} has no raw/forget.txt (MUSE's forget corpus); add it")
    bios = (_corpus(forget_txt, "forget", passage_words) + _corpus(retain_txt, "retain", passage_words)
            + _corpus(_texts(directory, "holdout*.txt"), "holdout", passage_words))
    forget, retain = _qa(directory, "forget"), _qa(directory, "retain")
    # QA records belong to no passage: membership inference compares forget with holdout passages' owners.
    return Benchmark(forget=forget, retain=retain, holdout=[], world=world_facts(random.Random(seed)),
                     neighbours=[], bios=bios)
