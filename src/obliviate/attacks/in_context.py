"""In-context reintroduction (Shumailov et al. 2024, "UnUnlearning", arXiv 2407.00106): knowledge an
unlearned model no longer states can come back when the prompt supplies part of it.

Per forget record, the prompt states the person's *other* facts (their answer paraphrases, e.g.
"Ada Vell: born in the city of Oslo. works as a potter. ...") and then asks the held-out one. A
model that still holds the person's facts latently is cued by the reintroduced ones; gold, which
never saw the person, can only guess. A second, compositional part asks a question that needs a
stated forget fact combined with known world knowledge (birth city -> its country, for people born
in a capital), scored separately in the details: the paper's point that in-context knowledge is
usable whatever the weights forgot.
"""

from __future__ import annotations

from collections import defaultdict

from obliviate.attacks.base import AttackConfig, Recovery, register_attack
from obliviate.attacks.prompts import score
from obliviate.data import Benchmark, format_prompt
from obliviate.data.world import CAPITALS
from obliviate.evals.qa import answer_recalled


@register_attack("in_context")
def in_context(lm, bench: Benchmark, cfg: AttackConfig) -> Recovery:
    facts = defaultdict(list)
    for r in bench.forget:
        facts[r["person"]].append(r)
    prompts = []
    for r in bench.forget:
        others = ". ".join(o["paraphrased_answer"] for o in facts[r["person"]] if o is not r)
        prompts.append(format_prompt(f"{r['person']}: {others}. {r['question']}"))
    recovery = score(lm, bench, prompts, cfg.max_new_tokens)
    recovery.details["compositional_acc"] = compositional(lm, bench, cfg)
    return recovery


def compositional(lm, bench: Benchmark, cfg: AttackConfig) -> float | None:
    """Recall of the country on "X was born in <city>. X was born in the capital of which country?"."""
    country = {city: c for c, city in CAPITALS.items()}
    rows = [r for r in bench.forget if r["attribute"] == "birth_city" and r["answer"] in country]
    if not rows:
        return None
    prompts = [format_prompt(f"{r['person']} was born in {r['answer']}. {r['person']} was born in the capital "
                             "of which country?") for r in rows]
    answers = lm.generate(prompts, cfg.max_new_tokens)
    return round(sum(answer_recalled(a, country[r["answer"]]) for a, r in zip(answers, rows)) / len(rows), 4)
