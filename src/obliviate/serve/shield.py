"""What the server must not say right now: the ledger's protected facts, a prompt classifier over
them, and the output audit every response passes.

    shield = Shield(ledger)                         # reads the ledger's protected facts once
    shield.refresh()                                # re-reads them if any ledger event was added since
    decision = shield.classify([prompt_text])[0]    # None while nothing is protected
    leaked = shield.leaks(prompt_text, completion, decision)   # protected values the completion states

The classifier is the guards' (`guards.classifier`): alias matching plus embedding similarity,
with its threshold calibrated to a 1 % false-positive rate on prompts it must not fire on: the
general replay questions, the built-in world questions, and the protected questions themselves
asked about invented people (the first 10 protected subjects' questions, name swapped). Without
those, questions about other people fired far more often than 1 %: on tiny, calibrated on general
and world questions alone, the guard cost retain accuracy 12 points (docs/serve.md). A flagged
prompt is answered through the guard (`engine.py`).

The audit runs on every response, flagged or not, so a prompt form the classifier misses cannot
carry a protected value out: a completion leaks when it states, as whole words, a protected answer
of a target that a flagged prompt retrieved (its top-k) or that the prompt or completion names by
alias, or when it names a protected subject the prompt did not name (the answer to a reverse
question). Checking every protected answer against every response would refuse answers
that merely share a common value ("1973", "physician") with some protected person; tying the
check to the targets in play keeps retain answers intact (docs/serve.md has the measured rates).

Reloading costs one `SELECT max(id) FROM events` per poll: every change of status (submission,
suppression, removal, cancellation) appends an event, so an unchanged maximum means unchanged facts.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass

from sqlalchemy import func, select

from obliviate.data import format_prompt
from obliviate.guards.alu import contains_phrase
from obliviate.guards.classifier import Decision, PromptClassifier
from obliviate.guards.embeddings import Embedder, load_embedder
from obliviate.guards.targets import ForgetTarget, TargetStore, words
from obliviate.ledger import Event, protected_targets
from obliviate.requests.counterfactual import invented_names

FPR = 0.01


def negative_prompts() -> list[str]:
    """Questions about no person at all: what the classifier must not fire on (its calibration set)."""
    from obliviate.data.general import GENERAL_QUESTIONS
    from obliviate.evals.multiple_choice import world_choice_questions

    return [format_prompt(q) for q in [*GENERAL_QUESTIONS, *(q["question"] for q in world_choice_questions())]]


def counterfactual_prompts(targets: list[ForgetTarget], limit: int = 10, seed: int = 0) -> list[str]:
    """The first `limit` person targets' questions about invented people: same wording, name swapped."""
    people = [t for t in targets if t.aliases][:limit]
    names = invented_names(len(people), random.Random(seed), {t.name for t in targets})
    out = []
    for target, new in zip(people, names):
        pattern = re.compile("|".join(rf"(?<!\w){re.escape(n)}(?!\w)" for n in target.names))
        out += [format_prompt(pattern.sub(lambda m: new if m.group() == target.name else new.split()[-1],
                                          f["question"])) for f in target.facts if f.get("question")]
    return out


def ledger_targets(ledger) -> tuple[list[ForgetTarget], int]:
    """(the guard's targets now, the newest event id): a subject with a first and last name also
    matches its surname alone, as the benchmark's targets do."""
    with ledger.begin() as session:
        marker = session.scalar(select(func.max(Event.id))) or 0
        rows = protected_targets(session)
    targets = []
    for row in rows:
        is_person = any("question" in f for f in row["facts"]) and len(row["name"].split()) > 1 and \
            not row["name"].endswith("?")
        aliases = [row["name"].split()[-1]] if is_person else []
        targets.append(ForgetTarget(row["name"], aliases, row["facts"], row["texts"]))
    return targets, marker


@dataclass(frozen=True)
class Snapshot:
    """The protection at one moment: swapped whole on reload, so a request sees one consistent set."""
    marker: int
    classifier: PromptClassifier | None  # None: nothing is protected

    @property
    def targets(self) -> int:
        return 0 if self.classifier is None else len(self.classifier.store)


class Shield:
    """The protected facts of one ledger, kept current by `refresh` (the server polls it)."""

    def __init__(self, ledger, embedder: Embedder | None = None, top_k: int = 3, fpr: float = FPR):
        self.ledger, self.top_k, self.fpr = ledger, top_k, fpr
        self.embedder = embedder or load_embedder()
        self._lock = threading.Lock()  # the embedder's cache is not thread-safe
        self._negatives = negative_prompts()
        self.embedder.encode(self._negatives)  # now, so the first submission does not wait for it
        self.snapshot = Snapshot(-1, None)
        self.refresh()

    def refresh(self) -> bool:
        """Re-read the protected facts if the ledger changed since the last read; True if it did."""
        with self.ledger.begin() as session:
            marker = session.scalar(select(func.max(Event.id))) or 0
        if marker == self.snapshot.marker:
            return False
        targets, marker = ledger_targets(self.ledger)
        classifier = None
        if targets:
            with self._lock:
                matrix = self.embedder.encode([TargetStore.key_text(t) for t in targets])
                classifier = PromptClassifier(TargetStore(targets, self.embedder, matrix), top_k=self.top_k,
                                              embed_named=False)
                classifier.calibrate(self._negatives + counterfactual_prompts(targets), self.fpr)
        self.snapshot = Snapshot(marker, classifier)
        return True

    def classify(self, prompts: list[str], snapshot: Snapshot | None = None) -> list[Decision | None]:
        """One decision per prompt (None while nothing is protected); one embedding call for all."""
        clf = (snapshot or self.snapshot).classifier
        if clf is None:
            return [None] * len(prompts)
        with self._lock:
            return clf.classify(prompts)

    def leaks(self, prompt: str, completion: str, decision: Decision | None,
              snapshot: Snapshot | None = None) -> list[str]:
        """The protected answers `completion` states, of the targets in play (see the module doc)."""
        clf = (snapshot or self.snapshot).classifier
        if clf is None or not completion.strip():
            return []
        store = clf.store
        # the top-k of a prompt the classifier did not flag is whoever is nearest, not whom it asks
        # about: auditing their values refused retain answers sharing one (tiny: 473 -> 435 of 500)
        in_play = list(decision.targets if decision is not None and decision.fired else ())
        in_play += [t for t, _, _ in store.alias_hits(completion)] + [t for t, _, _ in store.alias_hits(prompt)]
        text = [w for w, _, _ in words(completion)]
        asked = {t for t, _, _ in store.alias_hits(prompt)}
        # a protected name the prompt did not give: the answer to a reverse question ("who was born ...?")
        found = [completion[s:e] for t, s, e in store.alias_hits(completion) if t not in asked]
        for t in dict.fromkeys(in_play):
            found += [a for a in store.targets[t].forbidden_answers if contains_phrase(text, a)]
        return list(dict.fromkeys(found))
