"""A forget request as data: what to forget, what to keep, and what to compare against (issue 17).

    from obliviate.requests import load_request, load_request_data
    req = load_request("requests/ada.yaml")   # YAML or JSON; relative paths resolve against its folder
    data = load_request_data(req)             # every file read and checked, records in the benchmark schema
    bench = data.benchmark()                  # the `Benchmark` shape every metric already reads

A request file:

    kind: data               # data: the records must end as if never trained on (privacy, copyright)
    forget: forget.jsonl     # {"subject": "Ada Vell", "question": "Where was Ada Vell born?", "answer": "Oslo"}
    reference: holdout.jsonl # non-members of the same distribution; or `synthesize_reference: true`
    retain: retain.jsonl     # optional QA records to keep

Record files are JSON Lines or one JSON array. A QA record needs `question` and `answer`;
`subject`, `attribute`, `phrasings`, `paraphrased_question`, `paraphrased_answer` and
`perturbed_answers` are optional (defaults in `_qa`). A record with `text` and no `question` is a
passage; one with `choices` is a multiple-choice probe (`answer`: the index or the text of the
correct choice), the evidence of a `kind: knowledge` request, whose chance level is known.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from obliviate.config import validation_message
from obliviate.data.benchmark import Benchmark
from obliviate.data.loaders.records import borrowed_wrong_answers, qa_record, read_records
from obliviate.errors import ObliviateError
from obliviate.io import atomic_write_text, write_jsonl
from obliviate.registry import did_you_mean
from obliviate.requests.counterfactual import synthesize_subjects

FILE_KEYS = ("forget", "retain", "reference", "neighbours")
_EXAMPLE = {"qa": '{"subject": "Ada Vell", "question": "Where was Ada Vell born?", "answer": "Oslo"}',
            "mc": '{"question": "Which gas is inert?", "choices": ["argon", "chlorine"], "answer": 0}'}
_SPLIT = {"forget": "forget", "reference": "holdout", "retain": "retain", "neighbours": "neighbours"}


class ForgetRequest(BaseModel):
    """What to forget and the evidence to judge it by; `load_request` reads one from a file."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    kind: Literal["data", "knowledge"] = Field(description="data: the forget records must end as if never trained "
                                               "on (privacy, copyright); knowledge: the model must not know this "
                                               "(hazard, concept)")
    forget: Path = Field(description="JSON Lines (or JSON array) file of the forget records")
    retain: Path | None = Field(None, description="optional file of QA records to keep")
    reference: Path | None = Field(None, description="data: non-member records of the same distribution "
                                   "(holdout); knowledge: multiple-choice probes of the forgotten knowledge")
    neighbours: Path | None = Field(None, description="multiple-choice probes of nearby knowledge that must be kept")
    synthesize_reference: bool = Field(False, description="data only: invent counterfactual subjects as the "
                                       "reference (needs QA records with `subject`)")
    reference_subjects: int | None = Field(None, ge=1, description="how many counterfactual subjects "
                                           "(default: as many as forget subjects)")
    id: str | None = Field(None, description="the request's identifier, e.g. a ticket number")
    subject: str | None = Field(None, description="whom or what the request is about")
    requester: str | None = Field(None, description="who asked for the forgetting")
    legal_basis: str | None = Field(None, description="the ground of the request, e.g. 'GDPR Art. 17'")
    seed: int = Field(0, description="seed of the counterfactual subjects")
    prompt_format: Literal["chat", "plain"] = Field("chat", description="how an instruct model trains on the QA "
                                                    "records: chat (through its chat template, as it is served) or "
                                                    "plain ('Question: ...\\nAnswer: ...' as plain text, the format "
                                                    "multiple-choice probes are scored in)")

    @model_validator(mode="after")
    def _consistent(self) -> "ForgetRequest":
        if self.synthesize_reference and self.kind == "knowledge":
            raise ValueError("synthesize_reference applies to kind: data only (a knowledge request's reference "
                             "is multiple-choice probes); remove it or set kind: data")
        if self.synthesize_reference and self.reference is not None:
            raise ValueError("give either reference or synthesize_reference: true, not both; remove one")
        if self.kind == "data" and self.reference is None and not self.synthesize_reference:
            raise ValueError("a data request needs non-members to compare against: give reference: <file of "
                             "records of the same distribution the model never saw>, or synthesize_reference: true")
        if self.reference_subjects is not None and not self.synthesize_reference:
            raise ValueError("reference_subjects applies only with synthesize_reference: true; remove it")
        return self


def _text(path: Path, what: str) -> str:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ObliviateError(f"cannot read {what} {path}: {e.strerror or e}; "
                             "check the path and its permissions") from None
    try:
        if b"\0" in raw:
            raise UnicodeDecodeError("utf-8", raw, 0, 1, "NUL byte")
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ObliviateError(f"{what} {path} is not a UTF-8 text file; give a YAML / JSON / JSON Lines file") from None


def _resolve(p: Path, base: Path) -> Path:
    p = p.expanduser()
    return p if p.is_absolute() else base / p


def load_request(path: str | Path) -> ForgetRequest:
    """The request in a YAML (.yaml / .yml) or JSON (.json) file; file paths in it are relative to its folder."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ObliviateError(f"request file {path} not found; pass a YAML or JSON forget request "
                             "(kind: data, forget: forget.jsonl, reference: holdout.jsonl)")
    text = _text(path, "request file")
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(text) if text.strip() else None
        except json.JSONDecodeError as e:
            raise ObliviateError(f"request file {path} is not valid JSON: {e.msg} at line {e.lineno}, "
                                 f"column {e.colno}") from None
    else:
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ObliviateError(f"request file {path} is not valid YAML: "
                                 f"{getattr(err, 'problem', None) or 'syntax error'}{where}") from None
    if raw is None:
        raise ObliviateError(f"request file {path} is empty; write at least 'kind: data' and 'forget: forget.jsonl'")
    if not isinstance(raw, dict):
        raise ObliviateError(f"request file {path} must be a mapping of keys to values (e.g. 'kind: data'), "
                             f"got a {type(raw).__name__}")
    fields = list(ForgetRequest.model_fields)
    for key in raw:
        if key not in fields:
            guess = did_you_mean(str(key), fields)
            hint = f"did you mean '{guess}'?" if guess else f"known keys: {', '.join(fields)}"
            raise ObliviateError(f"request file {path}: unknown key '{key}'; {hint}")
    try:
        req = ForgetRequest.model_validate(raw)
    except ValidationError as err:
        problem = validation_message(err).removeprefix("invalid config: ")
        raise ObliviateError(f"request file {path}: {problem}") from None
    update = {k: _resolve(getattr(req, k), path.parent) for k in FILE_KEYS if getattr(req, k) is not None}
    for key, p in update.items():
        if not p.is_file():
            raise ObliviateError(f"request file {path}: {key} file {p} not found; fix '{key}:' (relative paths "
                                 f"resolve against {path.parent})")
    return req.model_copy(update=update)


@dataclass
class RequestData:
    """A request's records, read and checked, in the built-in benchmark's schema."""

    kind: str
    forget: list[dict]  # QA records: person (= subject), attribute, question, phrasings, ... (`qa_record`)
    forget_passages: list[dict]  # {"person", "split": "forget", "text"}
    reference: list[dict]  # data: QA records of non-member subjects; knowledge: []
    reference_passages: list[dict]  # split "holdout"
    retain: list[dict]
    probes: list[dict]  # knowledge: {"question", "choices", "answer": index}; data: []
    neighbour_probes: list[dict]
    retain_passages: list[dict] = field(default_factory=list)  # split "retain"
    prompt_format: str = "chat"  # the request's: how QA records are encoded for training

    def benchmark(self) -> Benchmark:
        return Benchmark(forget=self.forget, retain=self.retain, holdout=self.reference, world=[], neighbours=[],
                         bios=self.forget_passages + self.reference_passages + self.retain_passages)


@dataclass
class _File:
    """One record file, parsed: QA records with their lines, passages, probes, explicit subjects."""

    path: Path
    role: str
    qa: list[tuple[int, dict]] = field(default_factory=list)
    passages: list[dict] = field(default_factory=list)
    probes: list[tuple[int, dict]] = field(default_factory=list)
    subjects: dict[str, int] = field(default_factory=dict)  # subject named in the file -> first line

    @property
    def label(self) -> str:
        return f"{self.role} file {self.path}"


def _require(rec: dict, fields: tuple[str, ...], path: Path, line: int, why: str = "") -> None:
    # As records.require, with the fix a request needs (not data.path).
    for f in fields:
        if rec.get(f) in (None, "", []):
            raise ObliviateError(f"{path}, line {line}: record lacks required field '{f}' (fields present: "
                                 f"{', '.join(sorted(rec)) or 'none'}){why}; add it")


def _string(rec: dict, key: str, path: Path, line: int) -> str:
    value = rec[key]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ObliviateError(f"{path}, line {line}: field '{key}' must be a string, got {value!r}")
    return str(value)


def _strings(rec: dict, key: str, path: Path, line: int) -> list[str] | None:
    value = rec.get(key)
    if value is None:
        return None
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ObliviateError(f"{path}, line {line}: field '{key}' must be a non-empty list of strings, got {value!r}")
    return value


def _probe(rec: dict, path: Path, line: int) -> dict:
    _require(rec, ("question", "choices"), path, line)
    choices = rec["choices"]
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) for c in choices):
        raise ObliviateError(f"{path}, line {line}: field 'choices' must be a list of at least two strings, "
                             f"got {choices!r}")
    answer = rec.get("answer")
    if isinstance(answer, str) and answer in choices:
        answer = choices.index(answer)
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise ObliviateError(f"{path}, line {line}: field 'answer' must be the index of the correct choice "
                             f"(0 to {len(choices) - 1}) or the text of one choice, got {answer!r}, "
                             "which is neither")
    return {"question": _string(rec, "question", path, line), "choices": choices, "answer": answer}


def _qa(rec: dict, subject: str | None, default: str, path: Path, line: int) -> dict:
    """A QA record in the benchmark schema; perturbed_answers None until the file's answers are known."""
    _require(rec, ("question", "answer"), path, line)
    question, answer = _string(rec, "question", path, line), _string(rec, "answer", path, line)
    if rec.get("attribute") is not None:
        attribute = _string(rec, "attribute", path, line)
    elif subject and subject in question:  # the question template is the attribute
        attribute = question.replace(subject, "{n}")
    else:
        attribute = question
    paraphrased_question = _string(rec, "paraphrased_question", path, line) if rec.get("paraphrased_question") else None
    paraphrased_answer = _string(rec, "paraphrased_answer", path, line) if rec.get("paraphrased_answer") else answer
    out = qa_record(question, answer, paraphrased_answer, _strings(rec, "perturbed_answers", path, line),
                    subject or default, attribute, paraphrased_question)
    out["phrasings"] = _strings(rec, "phrasings", path, line) or [question]
    return out


def _read(path: Path, role: str, kind: str, need_subject: bool = False) -> _File:
    """Parse one record file of a request; which record types it may hold depends on role and kind."""
    what = f"request {role} file"
    if not path.is_file():
        raise ObliviateError(f"{what} {path} not found; fix the '{role}' path of the request")
    text = _text(path, what)
    probes_only = kind == "knowledge" and role in ("reference", "neighbours") or role == "neighbours"
    if not text.strip() or re.fullmatch(r"\s*\[\s*\]\s*", text):
        raise ObliviateError(f"{what} {path} holds no records; add JSON-lines records such as "
                             f"{_EXAMPLE['mc' if probes_only else 'qa']}")
    out = _File(path, role)
    for line, rec in read_records(path):
        is_probe = "choices" in rec
        if is_probe and not (kind == "knowledge" and role in ("forget", "reference") or role == "neighbours"):
            raise ObliviateError(f"{path}, line {line}: a multiple-choice probe has no place in the {role} file of a "
                                 f"{kind} request; probes go in the forget, reference or neighbours file of a "
                                 "kind: knowledge request (or write it as a QA record {question, answer})")
        if probes_only and not is_probe:
            raise ObliviateError(f"{path}, line {line}: the {role} file of a {kind} request holds multiple-choice "
                                 f"probes; write this record as one, e.g. {_EXAMPLE['mc']}")
        if is_probe:
            out.probes.append((line, _probe(rec, path, line)))
            continue
        subject = rec.get("subject", rec.get("person"))
        subject = _string({"subject": subject}, "subject", path, line) if subject not in (None, "") else None
        if subject:
            out.subjects.setdefault(subject, line)
        if "text" in rec and "question" not in rec:
            out.passages.append({"person": subject or f"record {line}", "split": _SPLIT[role],
                                 "text": _string(rec, "text", path, line)})
        else:
            if need_subject and not subject:
                _require(rec, ("subject",), path, line,
                         " (synthesize_reference swaps each QA record's subject for an invented one)")
            default = rec.get("question", "") if kind == "knowledge" else f"record {line}"
            out.qa.append((line, _qa(rec, subject, str(default), path, line)))
    return out


def _fill_perturbed(files: list[_File]) -> None:
    """Missing perturbed answers: other answers of the same file (as TOFU files), else of the request."""
    everywhere = [r["answer"] for f in files for _, r in f.qa]
    for f in files:
        answers = [r["answer"] for _, r in f.qa]
        for i, (line, r) in enumerate(f.qa):
            if r["perturbed_answers"] is None:
                r["perturbed_answers"] = (borrowed_wrong_answers(answers, i)
                                          or borrowed_wrong_answers([r["answer"], *everywhere], 0))
            if not r["perturbed_answers"]:
                raise ObliviateError(f"{f.path}, line {line}: record lacks 'perturbed_answers' and the request has "
                                     'no other answer to stand in; add "perturbed_answers": ["<a wrong answer>", ...]')


def _pairs(f: _File) -> dict[tuple[str, str], int]:
    pairs = {(r["question"], r["answer"]): line for line, r in f.qa}
    for line, p in f.probes:
        pairs.setdefault((p["question"], p["choices"][p["answer"]]), line)
    return pairs


def _check_disjoint(a: _File, b: _File, why: str, by_question: bool = False) -> None:
    """No subject named in both files, and no shared (question, answer) (or question)."""
    for subject, line in a.subjects.items():
        if subject in b.subjects:
            raise ObliviateError(f"request {a.label} and {b.label} share the subject {subject!r} ({a.role} line "
                                 f"{line}, {b.role} line {b.subjects[subject]}); {why}: remove it from one of them")
    if by_question:
        first = {r["question"]: line for line, r in reversed(b.qa)}
        for line, r in a.qa:
            if r["question"] in first:
                raise ObliviateError(f"request {a.label} and {b.label} both hold the question {r['question']!r} "
                                     f"({a.role} line {line}, {b.role} line {first[r['question']]}); {why}: remove "
                                     "it from one of them")
        return
    theirs = _pairs(b)
    for (question, answer), line in _pairs(a).items():
        if (question, answer) in theirs:
            raise ObliviateError(f"request {a.label} and {b.label} both hold the question {question!r} with answer "
                                 f"{answer!r} ({a.role} line {line}, {b.role} line {theirs[question, answer]}); "
                                 f"{why}: remove it from one of them")


def load_request_data(req: ForgetRequest) -> RequestData:
    """Read and check every file of the request; the reference is invented when synthesize_reference is set."""
    forget = _read(req.forget, "forget", req.kind, need_subject=req.synthesize_reference)
    reference = _read(req.reference, "reference", req.kind) if req.reference is not None else None
    retain = _read(req.retain, "retain", req.kind) if req.retain is not None else None
    neighbours = _read(req.neighbours, "neighbours", req.kind) if req.neighbours is not None else None
    if reference is not None:
        why = ("a reference record must be one the model never saw" if req.kind == "data"
               else "a probe belongs in one file")
        _check_disjoint(forget, reference, why)
    if retain is not None:
        _check_disjoint(forget, retain, "a question cannot be both forgotten and kept", by_question=True)
        if reference is not None and req.kind == "data":
            _check_disjoint(reference, retain, "reference records must be non-members, and kept records are trained on")
    _fill_perturbed([f for f in (forget, reference, retain) if f is not None])
    probes = [p for _, p in forget.probes] + ([p for _, p in reference.probes] if reference else [])
    if req.kind == "knowledge" and not probes:
        where = f"{forget.label}" + (f" nor {reference.label}" if reference else "")
        raise ObliviateError(f"request {where} holds no multiple-choice probes; a knowledge request needs "
                             "multiple-choice probes whose chance level is known, e.g. " + _EXAMPLE["mc"])
    forget_qa = [r for _, r in forget.qa]
    reference_qa = [r for _, r in reference.qa] if reference and req.kind == "data" else []
    if req.synthesize_reference:
        if not forget_qa:
            raise ObliviateError(f"request {forget.label} holds no QA records, so synthesize_reference has no "
                                 "questions to ask invented subjects; give a reference file instead")
        for line, r in forget.qa:
            if not re.search(rf"(?<!\w){re.escape(r['person'])}(?!\w)", r["question"]):
                raise ObliviateError(f"{req.forget}, line {line}: the question {r['question']!r} does not name its "
                                     f"subject {r['person']!r}; synthesize_reference swaps the name, so write it into "
                                     "the question or give a reference file instead")
        taken = {r["person"] for r in forget_qa} | ({r["person"] for _, r in retain.qa} if retain else set())
        try:
            reference_qa = synthesize_subjects(forget_qa, req.reference_subjects, req.seed, taken)
        except ObliviateError as e:
            raise ObliviateError(f"request {forget.label}: {e}") from None
    return RequestData(
        kind=req.kind, forget=forget_qa, forget_passages=forget.passages, reference=reference_qa,
        reference_passages=reference.passages if reference and req.kind == "data" else [],
        retain=[r for _, r in retain.qa] if retain else [], probes=probes,
        neighbour_probes=[p for _, p in neighbours.probes] if neighbours else [],
        retain_passages=retain.passages if retain else [], prompt_format=req.prompt_format)


def request_from_benchmark(bench: Benchmark, directory: str | Path) -> Path:
    """Write a data request for `bench`'s forget people into `directory`; returns its request.yaml.

    forget.jsonl: the forget QA records (`person` written as `subject`, every field kept, so
    loading gives the same records) and biographies; reference.jsonl: the holdout people's;
    retain.jsonl: the retain split's. Each file is written atomically and request.yaml last, so
    a request.yaml is only ever beside complete data files.
    """
    directory = Path(directory)
    if not bench.forget or not bench.holdout:
        raise ObliviateError("a data request needs forget and holdout people; this benchmark lacks "
                             f"{'forget' if not bench.forget else 'holdout'} records")

    def records(split: str) -> list[dict]:
        qa = [{"subject": r["person"], **{k: v for k, v in r.items() if k != "person"}} for r in bench.split(split)]
        return qa + [{"subject": b["person"], "text": b["text"]} for b in bench.bios_of(split)]

    request = {"kind": "data", "forget": "forget.jsonl", "reference": "reference.jsonl"}
    write_jsonl(directory / "forget.jsonl", records("forget"))
    write_jsonl(directory / "reference.jsonl", records("holdout"))
    if bench.retain:
        write_jsonl(directory / "retain.jsonl", records("retain"))
        request["retain"] = "retain.jsonl"
    atomic_write_text(directory / "request.yaml", yaml.safe_dump(request, sort_keys=False))
    return directory / "request.yaml"
