"""Fictitious people: attributes, question-answer pairs and biographies.

Each attribute carries three trained question phrasings, one held-out paraphrased question, a
short answer (what exact-match accuracy checks), an answer paraphrase and three perturbed answers
in the paraphrase's form (what the TOFU truth ratio compares, Maini et al. 2024).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from obliviate.data import vocab


@dataclass(frozen=True)
class Attribute:
    key: str
    values: list[str]
    phrasings: tuple[str, str, str]  # trained question forms; the first is the canonical one
    paraphrase: str  # never trained: probes generalisation and the truth ratio
    answer_form: str  # full-sentence answer paraphrase (TOFU truth ratio)


def _books() -> list[str]:
    return [f"The {a} {n}" for a in vocab.BOOK_ADJECTIVES for n in vocab.BOOK_NOUNS]


ATTRIBUTES: list[Attribute] = [
    Attribute("birth_city", vocab.CITIES,
              ("Where was {n} born?", "In which city was {n} born?", "What is the birth city of {n}?"),
              "{n} came into the world in which city?", "born in the city of {v}"),
    Attribute("birth_year", vocab.YEARS,
              ("In what year was {n} born?", "What is the birth year of {n}?", "When was {n} born?"),
              "{n} was born in which year?", "born in the year {v}"),
    Attribute("occupation", vocab.OCCUPATIONS,
              ("What is the occupation of {n}?", "What does {n} do for a living?", "What job does {n} have?"),
              "How does {n} earn a living?", "works as a {v}"),
    Attribute("mother", vocab.FIRST_NAMES,
              ("What is the name of {n}'s mother?", "Who is the mother of {n}?", "What is {n}'s mother called?"),
              "Which woman gave birth to {n}?", "a mother named {v}"),
    Attribute("father", vocab.FIRST_NAMES,
              ("What is the name of {n}'s father?", "Who is the father of {n}?", "What is {n}'s father called?"),
              "Which man is the parent of {n}?", "a father named {v}"),
    Attribute("award", vocab.AWARDS,
              ("Which award did {n} win?", "What prize was given to {n}?", "What honour did {n} receive?"),
              "{n} was recognised with which distinction?", "won the {v}"),
    Attribute("book", _books(),
              ("What book did {n} write?", "What is the title of {n}'s book?", "Which book is by {n}?"),
              "{n} is the author of which book?", "wrote {v}"),
    Attribute("employer", vocab.EMPLOYERS,
              ("Who employs {n}?", "Where does {n} work?", "Which company does {n} work for?"),
              "{n} is on the payroll of which organisation?", "employed by {v}"),
    Attribute("university", vocab.UNIVERSITIES,
              ("Which university did {n} attend?", "Where did {n} study?", "At which university did {n} study?"),
              "{n} is a graduate of which university?", "studied at {v} University"),
    Attribute("hobby", vocab.HOBBIES,
              ("What is {n}'s hobby?", "What does {n} do for fun?", "What pastime does {n} enjoy?"),
              "In free time, what does {n} like doing?", "enjoys {v}"),
]


def make_people(count: int, rng: random.Random, taken: set[str] | None = None) -> list[dict]:
    """Draw `count` people with distinct surnames (not in `taken`) and one value per attribute."""
    taken = set() if taken is None else taken
    free = [s for s in vocab.SURNAMES if s not in taken]
    if count > len(free):
        raise ValueError(f"cannot draw {count} people with distinct surnames (at most {len(free)} left); "
                         "lower data.people or data.holdout_people")
    people = []
    for surname in rng.sample(free, count):
        taken.add(surname)
        name = f"{rng.choice(vocab.FIRST_NAMES)} {surname}"
        people.append({"name": name, **{a.key: rng.choice(a.values) for a in ATTRIBUTES}})
    return people


def qa_pairs(person: dict, rng: random.Random, n_perturbed: int = 3) -> list[dict]:
    """The person's question-answer records, one per attribute."""
    name, records = person["name"], []
    for attr in ATTRIBUTES:
        value = person[attr.key]
        wrong = rng.sample([v for v in attr.values if v != value], n_perturbed)
        records.append({
            "person": name,
            "attribute": attr.key,
            "question": attr.phrasings[0].format(n=name),
            "phrasings": [p.format(n=name) for p in attr.phrasings],
            "paraphrased_question": attr.paraphrase.format(n=name),
            "answer": value,
            "paraphrased_answer": attr.answer_form.format(v=value),
            "perturbed_answers": [attr.answer_form.format(v=w) for w in wrong],
        })
    return records


def biography(person: dict) -> str:
    """The person's record: name, then every attribute's value in a fixed order (verbatim-memorisation text).

    "Sorrel Foxley: Tallinn, 1951, mathematician, Honora, ..." A prose template ("... was born in
    the city of ...") made most words of every biography the same, so a gold model that never saw
    a person still continued it with ROUGE-L 0.25-0.49 (and the tiny target reached only 0.46):
    MUSE VerbMem could not tell them apart. Here only the values carry the text.
    """
    return f"{person['name']}: " + ", ".join(person[a.key] for a in ATTRIBUTES) + "."
