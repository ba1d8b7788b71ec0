"""Reading JSON / JSONL record files with the line of every record, and checking required fields.

    for line, rec in read_records("forget10.json"):   # JSON Lines or one JSON array, either works
        ...
    require(rec, ("question", "answer"), path, line)  # ObliviateError naming file, line and field

Errors point at the line a user must fix, so a JSON array is parsed element by element to know
where each record starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from obliviate.errors import ObliviateError

_WS = " \t\r\n"


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _array_records(text: str, path: Path) -> list[tuple[int, object]]:
    decoder, out = json.JSONDecoder(), []
    i = _skip(text, text.index("[") + 1)
    while i < len(text) and text[i] != "]":
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise ObliviateError(f"{path}, line {e.lineno}: invalid JSON ({e.msg})") from None
        out.append((_line(text, i), obj))
        i = _skip(text, end)
        if i < len(text) and text[i] == ",":
            i = _skip(text, i + 1)
        elif i >= len(text) or text[i] != "]":
            raise ObliviateError(f"{path}, line {_line(text, i)}: expected ',' or ']' between records")
    return out


def read_records(path: str | Path) -> list[tuple[int, dict]]:
    """(line, record) for each object in a JSON Lines file or a JSON array file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ObliviateError(f"cannot read data file {path}: {e.strerror or e}") from None
    if text.lstrip().startswith("["):
        rows = _array_records(text, path)
    else:
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((n, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise ObliviateError(f"{path}, line {n}: invalid JSON ({e.msg}); expected one JSON "
                                         "object per line (JSON Lines) or one JSON array") from None
    for n, rec in rows:
        if not isinstance(rec, dict):
            raise ObliviateError(f"{path}, line {n}: expected a JSON object, got {type(rec).__name__}")
    if not rows:
        raise ObliviateError(f"data file {path} holds no records")
    return rows


def require(rec: dict, fields: Iterable[str], path: Path, line: int) -> None:
    """Raise naming file, line and field when a required field is missing or empty."""
    for field in fields:
        if rec.get(field) in (None, "", []):
            have = ", ".join(sorted(rec)) or "none"
            raise ObliviateError(f"{path}, line {line}: record lacks required field '{field}' "
                                 f"(fields present: {have}); add it or point data.path at the right file")


def first_file(directory: Path, stems: Iterable[str], kind: str) -> Path:
    """The first of `<stem>.json` / `<stem>.jsonl` that exists under `directory`, else a clear error."""
    tried = []
    for stem in stems:
        for suffix in (".json", ".jsonl"):
            candidate = directory / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
            tried.append(candidate.name)
    raise ObliviateError(f"{directory} has no {kind} file (looked for {', '.join(tried)}); "
                         "set the split name in the config (e.g. --set data.forget_split=forget05)")


def qa_record(question: str, answer: str, paraphrased_answer: str, perturbed: list[str],
              person: str | None, attribute: str, paraphrased_question: str | None = None) -> dict:
    """A record in the built-in benchmark's schema, so every metric reads loaded data unchanged."""
    return {"person": person, "attribute": attribute, "question": question, "phrasings": [question],
            "paraphrased_question": paraphrased_question or question, "answer": answer,
            "paraphrased_answer": paraphrased_answer, "perturbed_answers": perturbed}


def borrowed_wrong_answers(answers: list[str], i: int, n: int = 3) -> list[str]:
    """n answers of the following records (cyclically) that differ from answer i: stand-in
    perturbed answers where a file has none (the truth ratio needs some false answers)."""
    out = []
    for k in range(1, len(answers)):
        other = answers[(i + k) % len(answers)]
        if other != answers[i] and other not in out:
            out.append(other)
        if len(out) == n:
            break
    return out
