"""TOFU (Maini et al. 2024, arXiv 2401.06121) from local files, as a `Benchmark`.

    bench = load_tofu("~/data/TOFU", forget_split="forget10", retain_split="retain90")
    obliviate run --set data.path=~/data/TOFU --set data.format=tofu --set data.forget_split=forget05

A TOFU directory holds one JSON Lines (or JSON array) file per split, named by the split:
`forget10.json`, `retain90.json`, `holdout10.json`, `world_facts.json`, `real_authors.json`, and
`<split>_perturbed.json` variants. Each record needs `question` and `answer`; `paraphrased_answer`,
`paraphrased_question` and `perturbed_answer` (a list or one string) are used when present.
The `_perturbed` file of a split is preferred because it carries the false answers the truth ratio
needs; without them, answers of other questions of the same file stand in.

TOFU lists 20 questions per fictitious author in order, so record i belongs to author i // 20:
that grouping is the "person" of each record (membership inference and reports count people).
"""

from __future__ import annotations

import random
from pathlib import Path

from obliviate.data.benchmark import Benchmark
from obliviate.data.loaders.records import borrowed_wrong_answers, first_file, qa_record, read_records, require
from obliviate.data.world import world_facts
from obliviate.errors import ObliviateError

QUESTIONS_PER_AUTHOR = 20
REQUIRED = ("question", "answer")


def _perturbed(rec: dict, path: Path, line: int) -> list[str] | None:
    value = rec.get("perturbed_answer", rec.get("perturbed_answers"))
    if value is None:
        return None
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ObliviateError(f"{path}, line {line}: field 'perturbed_answer' must be a string or a list of "
                             f"strings, got {value!r}")
    return value


def load_tofu_split(path: str | Path, split: str, group: str | None = None) -> list[dict]:
    """Records of one TOFU file in the benchmark schema; `group` names the people (None: no people)."""
    path = Path(path)
    rows = read_records(path)
    for line, rec in rows:
        require(rec, REQUIRED, path, line)
    answers = [str(rec["answer"]) for _, rec in rows]
    out = []
    for i, (line, rec) in enumerate(rows):
        wrong = _perturbed(rec, path, line) or borrowed_wrong_answers(answers, i)
        if not wrong:
            raise ObliviateError(f"{path}, line {line}: record lacks required field 'perturbed_answer' and "
                                 "the file has no other answer to stand in; add perturbed answers")
        person = f"{group} {i // QUESTIONS_PER_AUTHOR + 1}" if group else None
        out.append(qa_record(str(rec["question"]), answers[i], str(rec.get("paraphrased_answer") or answers[i]),
                             wrong, person, split, rec.get("paraphrased_question")))
    return out


def _split_file(directory: Path, split: str, required: bool = True) -> Path | None:
    try:
        return first_file(directory, (f"{split}_perturbed", split), f"TOFU '{split}'")
    except ObliviateError:
        if required:
            raise
        return None


def load_tofu(path: str | Path, forget_split: str = "forget10", retain_split: str = "retain90",
              holdout_split: str | None = None, seed: int = 0) -> Benchmark:
    """forget / retain / holdout from the named split files; world from `world_facts` and
    `real_authors` when present, else the built-in world facts. holdout defaults to
    `holdout<NN>` matching `forget<NN>` (TOFU's non-member authors), empty when absent."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise ObliviateError(f"TOFU data path {directory} is not a directory; point data.path at the folder "
                             f"holding {forget_split}.json and {retain_split}.json")
    holdout_split = holdout_split or forget_split.replace("forget", "holdout")
    forget = load_tofu_split(_split_file(directory, forget_split), "tofu", "forget author")
    retain = load_tofu_split(_split_file(directory, retain_split), "tofu", "retain author")
    hold_file = _split_file(directory, holdout_split, required=False)
    holdout = load_tofu_split(hold_file, "tofu", "holdout author") if hold_file else []
    world = []
    for name in ("world_facts", "real_authors"):
        f = _split_file(directory, name, required=False)
        world += load_tofu_split(f, name) if f else []
    world = world or world_facts(random.Random(seed))
    forget_answers = {r["answer"] for r in forget}
    neighbours = [r for r in retain if r["answer"] in forget_answers]
    return Benchmark(forget=forget, retain=retain, holdout=holdout, world=world, neighbours=neighbours)
