"""Synthetic forget targets: random people with random facts, to grow a target store to 10,000
beyond the benchmark's forget split (latency benchmark, retrieval tests).

    targets = synthetic_targets(1000, seed=0, taken={"Sorrel Foxley"})
"""

from __future__ import annotations

import random

from obliviate.guards.targets import ForgetTarget

_ONSETS = "b br c d dr f g gr h j k l m n p pr r s st t tr v w z".split()
_VOWELS = "a e i o u ai ea io ou".split()
_CODAS = "n r l s th m nd rk x ck".split()
_FACTS = ("born in {v}", "works as a {v}", "lives in {v}", "owns a {v}")
_VALUES = ("Avalon", "Brightmoor", "Corran", "Delvin", "Eskmoor", "Fallow", "pilot", "cooper", "mason",
           "scribe", "falcon", "sloop", "lantern", "orchard")


def _word(rng: random.Random, syllables: int) -> str:
    stem = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables))
    return stem.capitalize() + rng.choice(_CODAS)


def synthetic_targets(n: int, seed: int = 0, taken: set[str] | None = None) -> list[ForgetTarget]:
    """`n` targets with invented names (distinct surnames; no word of a `taken` name), a surname alias
    and four facts."""
    rng, out = random.Random(seed), []
    used = {w.casefold() for name in taken or () for w in name.split()}  # no alias may match a taken name
    while len(out) < n:
        first, last = _word(rng, rng.randint(1, 2)), _word(rng, rng.randint(2, 3))
        if last.casefold() in used or first.casefold() in used:
            continue
        used.add(last.casefold())
        name = f"{first} {last}"
        facts = [{"question": f"What about {name}?", "answer": rng.choice(_VALUES)} for _ in range(4)]
        texts = [f"{name}: " + ", ".join(f.format(v=x["answer"]) for f, x in zip(_FACTS, facts)) + "."]
        out.append(ForgetTarget(name, [last], facts, texts))
    return out
