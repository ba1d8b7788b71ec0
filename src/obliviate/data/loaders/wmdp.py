"""WMDP (Li et al. 2024, arXiv 2403.03218) and other multiple-choice files (MMLU-style).

    questions = load_choices("~/data/wmdp/wmdp-bio.json")
    questions[0]  # {"question": "...", "choices": ["...", "...", "...", "..."], "answer": 2}

Each record: `question` (string), `choices` (a list of at least two strings) and `answer`, the
index of the correct choice (0-based; a letter "A".."Z" is accepted too). Evaluation compares the
log-likelihoods of the choices (`obliviate.evals.multiple_choice`).
"""

from __future__ import annotations

from pathlib import Path

from obliviate.data.loaders.records import read_records, require
from obliviate.errors import ObliviateError


def _answer_index(value, n: int, path: Path, line: int) -> int:
    if isinstance(value, str) and len(value) == 1 and value.isalpha():
        value = ord(value.upper()) - ord("A")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
        raise ObliviateError(f"{path}, line {line}: field 'answer' must be the index of the correct choice, "
                             f"0 to {n - 1} (or a letter A-{chr(ord('A') + n - 1)}), got {value!r}")
    return value


def load_choices(path: str | Path) -> list[dict]:
    """Multiple-choice records {question, choices, answer index}, validated line by line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ObliviateError(f"multiple-choice file {path} not found; point it at a WMDP-style JSON / JSONL file")
    out = []
    for line, rec in read_records(path):
        require(rec, ("question", "choices"), path, line)
        if "answer" not in rec:
            raise ObliviateError(f"{path}, line {line}: record lacks required field 'answer' (the index of the "
                                 f"correct choice); fields present: {', '.join(sorted(rec))}")
        choices = rec["choices"]
        if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) for c in choices):
            raise ObliviateError(f"{path}, line {line}: field 'choices' must be a list of at least two strings, "
                                 f"got {choices!r}")
        out.append({"question": str(rec["question"]), "choices": choices,
                    "answer": _answer_index(rec["answer"], len(choices), path, line)})
    return out
