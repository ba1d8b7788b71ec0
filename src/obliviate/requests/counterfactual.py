"""Counterfactual subjects: invented people asked the forget set's questions (a gold-free reference).

    from obliviate.requests import synthesize_subjects
    reference = synthesize_subjects(bench.forget, count=None, seed=0, taken_names=set(bench.people("retain")))

Why: a data forget request ("these records must end as if never trained on") is judged against
non-members of the same distribution, and a requester often has none. Invented subjects serve:
the model cannot know them because they did not exist, so how it answers their questions is its
base rate of guessing, the level forgotten records should fall to, with no gold (retrained)
model needed. Each counterfactual copies one forget subject's question templates (same wording,
name swapped) and draws each answer from the values the forget set uses for that template, so
the base rates of guessing match: a model that answers "Oslo" to every birth-city question
scores the same on both.

Guarantee: no counterfactual shares a full name or a surname (last word) with a forget subject,
a name in `taken_names` or another counterfactual; no counterfactual's values over its templates
equal the values of a forget subject over the same templates (none is a forget subject under a
new name); the same input and seed give the same subjects.
"""

from __future__ import annotations

import itertools
import random
import re

from obliviate.data import vocab
from obliviate.errors import ObliviateError

_TRIES = 100  # random draws of a value tuple before enumerating the free ones
_MAX_SUBJECTS = 100_000


def _surname(name: str) -> str:
    parts = name.split()
    return parts[-1] if parts else name


def _mentions(name: str) -> re.Pattern:
    return re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")


def invented_names(count: int, rng: random.Random, taken: set[str]) -> list[str]:
    """`count` first-name + surname names whose surnames are new (not a surname of `taken`)."""
    used = {_surname(n) for n in taken} | taken
    free = [s for s in vocab.SURNAMES if s not in used]
    rng.shuffle(free)
    names = []
    for _ in range(count):
        if free:
            surname = free.pop()
        else:  # the built-in surnames are spent: double-barrelled ones, 620 x 619 more
            surname = "-".join(rng.sample(vocab.SURNAMES, 2))
            while surname in used:
                surname = "-".join(rng.sample(vocab.SURNAMES, 2))
        used.add(surname)
        names.append(f"{rng.choice(vocab.FIRST_NAMES)} {surname}")
    return names


def _key(records: list[dict], values: list[str]) -> tuple:
    return tuple(sorted(zip((r["attribute"] for r in records), values)))


def _values(name: str, records: list[dict], pool: dict[str, list[str]], forget_keys: set[tuple],
            rng: random.Random) -> list[str]:
    """One value per record, drawn from the pool of its template, not a forget subject's tuple."""
    for _ in range(_TRIES):
        values = [rng.choice(pool[r["attribute"]]) for r in records]
        if _key(records, values) not in forget_keys:
            return values
    # Few combinations are free: enumerate them (a small space, or the draws would have found one).
    choices = [sorted(set(pool[r["attribute"]])) for r in records]
    free = next((list(v) for v in itertools.product(*choices) if _key(records, list(v)) not in forget_keys), None)
    if free is None:
        templates = ", ".join(sorted({r["attribute"] for r in records}))
        raise ObliviateError(f"cannot invent a counterfactual of forget subject {name!r}: every combination of "
                             f"the values the forget set uses for its questions ({templates}) is a forget "
                             "subject's own; give a reference file of non-member records instead")
    return free


def _record(rec: dict, name: str, new_name: str, value: str, pool: list[str], rng: random.Random) -> dict:
    mention = _mentions(name)

    def rename(text: str) -> str:
        return mention.sub(lambda _: new_name, text)

    answer, paraphrase = rec["answer"], rec["paraphrased_answer"]
    if answer and answer in paraphrase:  # "born in the city of Oslo": keep the form, swap the value
        form = rename(paraphrase.replace(answer, "\0"))

        def phrase(v: str) -> str:
            return form.replace("\0", v)
    else:
        def phrase(v: str) -> str:
            return v
    true = phrase(value)
    n_wrong = len(rec["perturbed_answers"]) or 3
    others = sorted(set(pool) - {value})
    rng.shuffle(others)
    wrong = [phrase(v) for v in others[:n_wrong]]
    for p in rec["perturbed_answers"]:  # a small pool: the source's false answers fill up
        if len(wrong) < n_wrong and rename(p) != true and rename(p) not in wrong:
            wrong.append(rename(p))
    return {"person": new_name, "attribute": rec["attribute"], "question": rename(rec["question"]),
            "phrasings": [rename(p) for p in rec["phrasings"]],
            "paraphrased_question": rename(rec["paraphrased_question"]), "answer": value,
            "paraphrased_answer": true, "perturbed_answers": wrong}


def synthesize_subjects(forget: list[dict], count: int | None, seed: int,
                        taken_names: set[str] = frozenset()) -> list[dict]:
    """QA records (benchmark schema) of `count` invented subjects (default: one per forget subject).

    Counterfactual i copies the templates of forget subject i mod n (forget order), one record
    per record of that subject; `taken_names` (e.g. the retain subjects) are avoided like the
    forget names. Every forget question must name its subject (`person`), which is swapped.
    """
    subjects: dict[str, list[dict]] = {}
    for r in forget:
        subjects.setdefault(r["person"], []).append(r)
    if not subjects:
        raise ObliviateError("cannot invent counterfactual subjects: the forget set holds no QA records "
                             "about named subjects; give a reference file instead")
    for name, records in subjects.items():
        for r in records:
            if not _mentions(name).search(r["question"]):
                raise ObliviateError(f"cannot invent counterfactual subjects: the question {r['question']!r} does "
                                     f"not name its subject {name!r}; write the name into the question or give "
                                     "a reference file instead")
    count = len(subjects) if count is None else count
    if not 1 <= count <= _MAX_SUBJECTS:
        raise ObliviateError(f"reference_subjects must be between 1 and {_MAX_SUBJECTS}, got {count}")
    pool: dict[str, list[str]] = {}
    for r in forget:
        pool.setdefault(r["attribute"], []).append(r["answer"])
    forget_keys = {_key(records, [r["answer"] for r in records]) for records in subjects.values()}
    rng = random.Random(seed)
    sources = list(subjects.items())
    out = []
    for i, new_name in enumerate(invented_names(count, rng, set(subjects) | set(taken_names))):
        name, records = sources[i % len(sources)]
        values = _values(name, records, pool, forget_keys, rng)
        out += [_record(r, name, new_name, v, pool[r["attribute"]], rng) for r, v in zip(records, values)]
    return out
