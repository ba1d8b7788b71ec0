"""What to forget: `ForgetTarget`s and the `TargetStore` that retrieves them for a prompt.

    store = TargetStore.from_benchmark(bench)              # one target per forget-split person
    store = TargetStore.from_jsonl("targets.jsonl")        # or a user's file, one JSON object a line
    store.alias_hits("Where was Sorrel Foxley born?")      # [(target index, start, end)], exact names
    idx, sims = store.search(store.embedder.encode([prompt]), k=3)   # embedding top-k

A target file line: {"name": "Sorrel Foxley", "aliases": ["Foxley"],
                     "facts": [{"question": "Where was Sorrel Foxley born?", "answer": "Tallinn"}],
                     "texts": ["Sorrel Foxley: Tallinn, 1951, ..."]}   (only "name" is required)

Retrieval costs the same for 1 or 10,000 targets in practice: alias matching looks up the prompt's
word n-grams in a dict (no scan over targets), and the embedding search is one matrix-vector
product over unit rows (10,000 x 384 floats).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from obliviate.data import Benchmark
from obliviate.errors import ObliviateError
from obliviate.guards.embeddings import Embedder, load_embedder
from obliviate.io import atomic_write_text

_WORD = re.compile(r"\w+")


def words(text: str) -> list[tuple[str, int, int]]:
    """(case-folded word, start, end) for each run of word characters: the alias-matching unit, so
    "Foxley's" and "Foxley?" both contain the word "foxley" and "Foxleyson" does not."""
    return [(m.group().casefold(), m.start(), m.end()) for m in _WORD.finditer(text)]


@dataclass
class ForgetTarget:
    """One subject to forget: its name, other names it goes by, and what is known about it."""
    name: str
    aliases: list[str] = field(default_factory=list)
    facts: list[dict] = field(default_factory=list)  # {"question": str, "answer": str, ...}
    texts: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return list(dict.fromkeys([self.name, *self.aliases]))

    @property
    def forbidden_answers(self) -> list[str]:
        return list(dict.fromkeys(f["answer"] for f in self.facts))

    @classmethod
    def from_dict(cls, row: object, where: str) -> "ForgetTarget":
        """Validate one parsed target; `where` ("targets.jsonl line 3") prefixes every error."""
        if not isinstance(row, dict):
            raise ObliviateError(f"{where}: expected a JSON object like {{\"name\": ...}}, got {type(row).__name__}")
        unknown = set(row) - {"name", "aliases", "facts", "texts"}
        if unknown:
            raise ObliviateError(f"{where}: unknown keys {sorted(unknown)}; allowed: name, aliases, facts, texts")
        name = row.get("name")
        if not isinstance(name, str) or not words(name):
            raise ObliviateError(f"{where}: \"name\" must be a non-empty string, got {name!r}")
        aliases, texts, facts = row.get("aliases", []), row.get("texts", []), row.get("facts", [])
        for key, value in (("aliases", aliases), ("texts", texts)):
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise ObliviateError(f"{where}: \"{key}\" must be a list of non-empty strings, got {value!r}")
        if not isinstance(facts, list) or not all(isinstance(f, dict) and isinstance(f.get("answer"), str)
                                                  and f["answer"].strip() for f in facts):
            raise ObliviateError(f"{where}: \"facts\" must be a list of objects with a non-empty \"answer\" "
                                 f"string (and optionally \"question\"), got {facts!r}")
        return cls(name, list(aliases), [dict(f) for f in facts], list(texts))


def targets_from_benchmark(bench: Benchmark, surname_alias: bool = True) -> list[ForgetTarget]:
    """One target per forget-split person: aliases = the surname (distinct per person in the built-in
    benchmark), facts = every QA record, texts = the biography."""
    bios = {b["person"]: b["text"] for b in bench.bios_of("forget")}
    out = []
    for person in bench.people("forget"):
        facts = [{"question": r["question"], "answer": r["answer"], "attribute": r["attribute"]}
                 for r in bench.forget if r["person"] == person]
        aliases = [person.split()[-1]] if surname_alias and len(person.split()) > 1 else []
        out.append(ForgetTarget(person, aliases, facts, [bios[person]] if person in bios else []))
    return out


def read_targets_jsonl(path: str | Path) -> list[ForgetTarget]:
    """Targets from a JSONL file; a malformed line raises with its line number."""
    path = Path(path)
    if not path.is_file():
        raise ObliviateError(f"target file {path} does not exist; write one JSON object per line "
                             "({\"name\": ..., \"aliases\": [...], \"facts\": [...]})")
    targets = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ObliviateError(f"{path} line {number}: not valid JSON ({e.msg} at column {e.colno}); "
                                 "each line must be one JSON object") from None
        targets.append(ForgetTarget.from_dict(row, f"{path} line {number}"))
    return targets


class TargetStore:
    """Targets indexed by exact alias (word n-grams) and by embedding (unit rows, dot-product top-k)."""

    def __init__(self, targets: list[ForgetTarget], embedder: Embedder | None = None,
                 matrix: np.ndarray | None = None):
        if not targets:
            raise ObliviateError("the forget target list is empty; give at least one target (a forget split "
                                 "with people, or a JSONL file with one {\"name\": ...} object per line)")
        self.targets = targets
        self.embedder = embedder or load_embedder()
        self.matrix = self.embedder.encode_uncached([self.key_text(t) for t in targets]) if matrix is None else matrix
        if self.matrix.shape != (len(targets), self.embedder.dim):
            raise ObliviateError(f"target embeddings have shape {self.matrix.shape}, expected "
                                 f"({len(targets)}, {self.embedder.dim}); rebuild the store")
        self._aliases: dict[tuple[str, ...], list[int]] = {}
        for i, t in enumerate(targets):
            for n in t.names:
                key = tuple(w for w, _, _ in words(n))
                if key and i not in self._aliases.setdefault(key, []):
                    self._aliases[key].append(i)
        self._longest = max(map(len, self._aliases))

    @staticmethod
    def key_text(target: ForgetTarget) -> str:
        # The name alone: measured on tiny, adding a question template raised retain prompts'
        # similarity as much as forget prompts', so it separated them no better.
        return target.name

    def __len__(self) -> int:
        return len(self.targets)

    @classmethod
    def from_benchmark(cls, bench: Benchmark, embedder: Embedder | None = None, surname_alias: bool = True
                       ) -> "TargetStore":
        return cls(targets_from_benchmark(bench, surname_alias), embedder)

    @classmethod
    def from_jsonl(cls, path: str | Path, embedder: Embedder | None = None) -> "TargetStore":
        targets = read_targets_jsonl(path)
        if not targets:
            raise ObliviateError(f"target file {path} holds no targets; add one JSON object per line")
        return cls(targets, embedder)

    def subset(self, n: int) -> "TargetStore":
        """The first `n` targets, reusing their embeddings (benchmarks grow a store without re-encoding)."""
        return TargetStore(self.targets[:n], self.embedder, self.matrix[:n])

    def alias_hits(self, text: str) -> list[tuple[int, int, int]]:
        """(target index, char start, char end) of every exact alias mention, longest match first at
        each position; cost depends on the text's length, not on the number of targets."""
        ws, hits = words(text), []
        for i in range(len(ws)):
            for n in range(min(self._longest, len(ws) - i), 0, -1):
                for t in self._aliases.get(tuple(w for w, _, _ in ws[i : i + n]), []):
                    hits.append((t, ws[i][1], ws[i + n - 1][2]))
        return hits

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices, similarities), each (len(queries), min(k, targets)), best first: cosine top-k."""
        # In torch, not numpy: for 10,000 rows numpy's OpenBLAS wakes its own threads, which keep
        # spinning after the product and take the core the model needs next (measured on 2 cores:
        # 12 ms -> 31-80 ms per request); torch reuses the model's thread pool.
        sims = torch.from_numpy(np.ascontiguousarray(queries)) @ torch.from_numpy(self.matrix).T
        top = sims.topk(min(k, len(self.targets)), dim=1)
        return top.indices.numpy(), top.values.numpy()

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(directory / "targets.jsonl", "".join(json.dumps(asdict(t)) + "\n" for t in self.targets))
        np.save(directory / "embeddings.npy", self.matrix)

    @classmethod
    def load(cls, directory: str | Path, embedder: Embedder | None = None) -> "TargetStore":
        directory = Path(directory)
        return cls(read_targets_jsonl(directory / "targets.jsonl"), embedder, np.load(directory / "embeddings.npy"))
