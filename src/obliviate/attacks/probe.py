"""Hidden-state probe: is a forget person's attribute still linearly readable from the weights' activations?

Per layer and attribute, a scikit-learn ridge classifier (a linear probe) maps the hidden state at the last
token of "<name>:" (how each person's biography record starts) to the person's value; it is
trained on retain people and tested on forget people whose value occurs among the retain
people's (a probe cannot name a class it never saw). `attacks.probe_attribute` = "all" (default)
probes every attribute: one value per person gave a per-person 0/1 score too noisy for an
equivalence bound (gold retrained with another seed scored 0.13 against gold's 0.01 on birth city
alone, 30 people: 168 people would have been needed). An unlearned model whose outputs no longer
say the value but whose activations still encode it is suppressing, not removing (Belrose et al.
2023 and Patil et al. 2023, "Can sensitive information be deleted from LLMs?", use such probes).

An item's (person, attribute) score is the share of layers whose probe names the value, so no layer is picked with
knowledge of the forget set; the per-layer accuracies go to the report.
"""

from __future__ import annotations


import numpy as np
from sklearn.linear_model import RidgeClassifier

from obliviate.attacks.base import AttackConfig, AttackSkipped, Recovery, register_attack
from obliviate.data import Benchmark
from obliviate.models.protocol import HiddenStatesUnavailable


def person_values(bench: Benchmark, split: str, attribute: str) -> dict[str, str]:
    return {r["person"]: r["answer"] for r in bench.split(split) if r["attribute"] == attribute}


def features(lm, names: list[str]) -> np.ndarray:
    """(people, layers + 1, hidden): each layer's hidden state at the last token of "<name>:"."""
    try:
        states = lm.hidden_states([f"{n}:" for n in names])
    except HiddenStatesUnavailable as err:
        raise AttackSkipped(f"needs hidden states; {lm.name} cannot give them ({err})") from None
    return np.stack([s[:, -1].float().numpy() for s in states])


def _fit_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """A linear probe: ridge regression onto one-hot classes (closed form; a logistic regression per
    attribute and layer made the probe the slowest attack, 40 s of a tiny model's verdict)."""
    scale = x_train.std(0) + 1e-6
    mean = x_train.mean(0)
    clf = RidgeClassifier(alpha=1.0).fit((x_train - mean) / scale, y_train)
    return clf.predict((x_test - mean) / scale)


def probe_attributes(bench: Benchmark, setting: str) -> list[str]:
    """`setting` itself, or with "all" every attribute the retain subjects have."""
    if setting != "all":
        return [setting]
    return sorted({r["attribute"] for r in bench.retain})


@register_attack("probe")
def probe(lm, bench: Benchmark, cfg: AttackConfig) -> Recovery:
    attributes = [a for a in probe_attributes(bench, cfg.probe_attribute) if person_values(bench, "retain", a)]
    if not attributes:  # a request without retain records, or with other attributes: nothing to train the probe on
        raise AttackSkipped(f"needs retain subjects with attribute {cfg.probe_attribute!r} to train the probe "
                            "(attacks.probe_attribute)")
    retain_people = bench.people("retain")
    x_train = features(lm, retain_people)  # first: a black box is skipped for that reason, whatever the data
    forget_people = bench.people("forget")
    x_test, row = features(lm, forget_people), {p: i for i, p in enumerate(forget_people)}
    scores, people, layer_hits, chances = [], [], [], []
    for attribute in attributes:
        train = person_values(bench, "retain", attribute)
        test = {p: v for p, v in person_values(bench, "forget", attribute).items() if v in set(train.values())}
        if not test:
            continue
        keep = [retain_people.index(p) for p in train]
        hits = np.array([_fit_predict(x_train[keep, layer], np.array(list(train.values())),
                                      x_test[[row[p] for p in test], layer]) == np.array(list(test.values()))
                         for layer in range(x_train.shape[1])], dtype=float)  # (layers + 1, people)
        scores += hits.mean(0).tolist()
        people += list(test)
        layer_hits.append(hits)
        chances.append(1 / len(set(train.values())))
    if not scores:
        raise AttackSkipped(f"no forget subject's {cfg.probe_attribute} value occurs among the retain subjects'")
    per_layer = np.concatenate(layer_hits, axis=1).mean(1)
    return Recovery(scores, people, {"layer_acc": [round(float(a), 4) for a in per_layer], "items": len(scores),
                                     "people": len(set(people)), "chance": round(float(np.mean(chances)), 4),
                                     "attributes": len(chances)})
