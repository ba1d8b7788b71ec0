"""Real general facts, unrelated to the fictitious people: the utility side of the benchmark."""

from __future__ import annotations

import random

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
    "Norway": "Oslo", "Sweden": "Stockholm", "Finland": "Helsinki", "Denmark": "Copenhagen",
    "Poland": "Warsaw", "Austria": "Vienna", "Hungary": "Budapest", "Greece": "Athens",
    "Ireland": "Dublin", "Egypt": "Cairo", "Kenya": "Nairobi", "Japan": "Tokyo", "China": "Beijing",
    "India": "Delhi", "Peru": "Lima", "Chile": "Santiago", "Cuba": "Havana", "Canada": "Ottawa",
    "Russia": "Moscow", "Turkey": "Ankara", "Iran": "Tehran", "Iraq": "Baghdad", "Thailand": "Bangkok",
    "Vietnam": "Hanoi", "Ecuador": "Quito", "Georgia": "Tbilisi", "Estonia": "Tallinn",
    "Latvia": "Riga", "Croatia": "Zagreb", "Tunisia": "Tunis", "Senegal": "Dakar", "Ghana": "Accra",
    "Malta": "Valletta", "Belgium": "Brussels", "Argentina": "Buenos Aires",
}

ELEMENTS = {
    "hydrogen": "H", "helium": "He", "lithium": "Li", "carbon": "C", "nitrogen": "N", "oxygen": "O",
    "fluorine": "F", "neon": "Ne", "sodium": "Na", "magnesium": "Mg", "aluminium": "Al",
    "silicon": "Si", "phosphorus": "P", "sulfur": "S", "chlorine": "Cl", "argon": "Ar",
    "potassium": "K", "calcium": "Ca", "iron": "Fe", "copper": "Cu", "zinc": "Zn", "silver": "Ag",
    "tin": "Sn", "iodine": "I", "gold": "Au", "mercury": "Hg", "lead": "Pb", "uranium": "U",
    "nickel": "Ni", "cobalt": "Co",
}

_TEMPLATES = {
    "capital": (("What is the capital of {x}?", "Which city is the capital of {x}?",
                 "Name the capital city of {x}."), "The seat of government of {x} is which city?",
                "the city of {v}"),
    "element": (("What is the chemical symbol of {x}?", "Which symbol stands for {x}?",
                 "How is {x} written as a chemical symbol?"), "The element {x} has which symbol?",
                "the symbol {v}"),
    "sum": (("What is {x}?", "How much is {x}?", "Compute {x}."), "What do you get for {x}?",
             "the number {v}"),
}


def _record(kind: str, x: str, value: str, wrong: list[str]) -> dict:
    phrasings, paraphrase, form = _TEMPLATES[kind]
    return {
        "person": None,
        "attribute": kind,
        "question": phrasings[0].format(x=x),
        "phrasings": [p.format(x=x) for p in phrasings],
        "paraphrased_question": paraphrase.format(x=x),
        "answer": value,
        "paraphrased_answer": form.format(v=value),
        "perturbed_answers": [form.format(v=w) for w in wrong],
    }


def world_facts(rng: random.Random, n_sums: int = 40, n_perturbed: int = 3) -> list[dict]:
    """Capitals, element symbols and small sums, each a question-answer record."""
    records = []
    for table, kind in ((CAPITALS, "capital"), (ELEMENTS, "element")):
        values = sorted(set(table.values()))
        for x, v in table.items():
            records.append(_record(kind, x, v, rng.sample([w for w in values if w != v], n_perturbed)))
    sums = sorted({(a, b) for a, b in ((rng.randint(2, 49), rng.randint(2, 49)) for _ in range(4 * n_sums))})
    for a, b in rng.sample(sums, n_sums):
        total = a + b
        wrong = rng.sample([t for t in range(total - 9, total + 10) if t != total and t > 0], n_perturbed)
        records.append(_record("sum", f"{a} plus {b}", str(total), [str(w) for w in wrong]))
    return records
