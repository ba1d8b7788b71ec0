"""MUSE scalability and sustainability (Shi et al. 2024, arXiv 2407.06460).

Scalability: unlearn forget sets of growing size (nested: 1 % of people inside 5 % inside 10 %).
Sustainability: forget requests arrive one after another; each request unlearns from the model
the previous request left, and the metrics after each request cover everything forgotten so far.
Both use a light evaluation (QA accuracy, forget quality on the forgotten people) so a curve costs
seconds per point; the gold model stays the reference, since it never saw any forget person.
"""

from __future__ import annotations

from typing import Callable

from obliviate.data import Benchmark
from obliviate.evals.qa import qa_metrics
from obliviate.evals.tofu import forget_quality, truth_ratios
from obliviate.models.protocol import LanguageModel

# (model, benchmark holding only the people to forget now) -> the unlearned model
Unlearn = Callable[[LanguageModel, Benchmark], LanguageModel]
GoldRatios = dict[tuple[str, str], float]  # (person, attribute) -> gold's truth ratio


def gold_ratio_table(bench: Benchmark, ratios: list[float]) -> GoldRatios:
    return {(r["person"], r["attribute"]): x for r, x in zip(bench.forget, ratios, strict=True)}


def light_eval(lm: LanguageModel, bench: Benchmark, gold: GoldRatios) -> dict[str, float]:
    """Accuracy on forget/retain/world, forget ROUGE, and forget quality vs gold on `bench.forget`."""
    row: dict[str, float] = {}
    for split in ("forget", "retain", "world"):
        results, _ = qa_metrics(lm, bench.split(split), split)
        row[f"{split}_acc"] = results[f"{split}_acc"].value
        if split == "forget":
            row["forget_rouge"] = results["forget_rouge"].value
    ratios = truth_ratios(lm, bench.forget)
    row["forget_quality"] = forget_quality(ratios, [gold[(r["person"], r["attribute"])] for r in bench.forget])
    return row


def scalability(unlearn: Unlearn, target: LanguageModel, bench: Benchmark, subsets: dict[float, set[str]],
                gold: GoldRatios) -> list[dict]:
    """One point per forget fraction: unlearn that many people from the target, then evaluate."""
    points = []
    for fraction, people in sorted(subsets.items()):
        sub = bench.restrict_forget(people)
        points.append({"fraction": fraction, "people": len(people), **light_eval(unlearn(target, sub), sub, gold)})
    return points


def sustainability(unlearn: Unlearn, target: LanguageModel, bench: Benchmark, requests: int, gold: GoldRatios
                   ) -> list[dict]:
    """Split the forget people into `requests` batches and unlearn them one after another."""
    people = bench.people("forget")
    requests = max(1, min(requests, len(people)))
    batches = [people[i::requests] for i in range(requests)]
    model, forgotten, points = target, set(), []
    for i, batch in enumerate(batches, 1):
        model = unlearn(model, bench.restrict_forget(set(batch)))
        forgotten |= set(batch)
        points.append({"request": i, "people": len(forgotten),
                       **light_eval(model, bench.restrict_forget(forgotten), gold)})
    return points
