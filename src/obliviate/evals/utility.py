"""Utility and fluency: TOFU model utility, perplexity of world-fact text, share of degenerate answers.

Unlearning that destroys the model "forgets" perfectly; these metrics catch it.

    model_utility(lm, bench).value          # TOFU: harmonic mean of six retain / world numbers
    world_perplexity(lm, bench).value       # lower = more fluent
    degenerate_share(generated).value       # share of empty / repetitive / non-text answers
"""

from __future__ import annotations

import math
import re
from collections import Counter

from obliviate.data import Benchmark, format_answer, format_prompt
from obliviate.evals.metric import MetricResult

from obliviate.evals.qa import qa_metrics
from obliviate.evals.tofu import answer_probability, truth_ratio_score, truth_ratios
from obliviate.models.protocol import LanguageModel

# The order of `model_utility(...).per_example`.
UTILITY_PARTS = ("retain_prob", "retain_rouge", "retain_truth", "world_prob", "world_rouge", "world_truth")
_MAX_EXP = 700.0  # math.exp overflows just above 709


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def harmonic_mean(values: list[float]) -> float:
    """n / sum(1 / x); 0 if any value is <= 0 (one useless component makes the model useless)."""
    if not values:
        raise ValueError("harmonic_mean needs at least one value")
    if min(values) <= 0:
        return 0.0
    return len(values) / sum(1 / v for v in values)


def option_probabilities(records: list[dict], ratios: list[float]) -> list[float]:
    """TOFU's option-normalised probability P(ã) / (P(ã) + sum_j P(â_j)) from truth ratios.

    With length-normalised P under the same prompt, ã the paraphrased and â_j the n perturbed
    answers, and R = mean_j P(â_j) / P(ã) (`truth_ratios`), it equals 1 / (1 + n R): the world
    truth ratios' scoring pass gives both numbers.
    """
    return [1 / (1 + len(r["perturbed_answers"]) * ratio) for r, ratio in zip(records, ratios, strict=True)]


def model_utility(lm: LanguageModel, bench: Benchmark, rouge: dict[str, float] | None = None,
                  retain_ratios: list[float] | None = None, world_ratios: list[float] | None = None,
                  retain_nll: list[float] | None = None) -> MetricResult:
    """TOFU model utility (Maini et al. 2024, arXiv 2401.06121): the harmonic mean of six numbers.

    per_example, in `UTILITY_PARTS` order: retain probability (mean length-normalised
    P(answer | question)), retain ROUGE-L recall of greedy answers, retain truth-ratio score
    mean(max(0, 1 - R)), then the same three on world facts, where the probability is normalised
    over the options (paraphrased answer vs perturbed answers, `option_probabilities`). TOFU's
    third pair, real authors, has no counterpart in the built-in benchmark: world facts play it.
    A zero component makes the utility 0. Higher is better.

    Pass what the suite already computed to skip work: `rouge` ({"retain": .., "world": ..}),
    raw truth ratios `retain_ratios` / `world_ratios`, and `retain_nll` (per-record mean answer NLL).
    """
    for split in ("retain", "world"):
        if not bench.split(split):
            raise ValueError(f"model_utility needs records in the {split} split; it has none")
    rouge = dict(rouge or {})
    for split in ("retain", "world"):
        if split not in rouge:
            qa = qa_metrics(lm, bench.split(split), split)[0]
            rouge[split] = qa[f"{split}_rouge"].value
            if split == "retain" and retain_nll is None:
                retain_nll = qa["retain_nll"].per_example
    retain_prob = ([math.exp(-x) for x in retain_nll] if retain_nll is not None
                   else answer_probability(lm, bench.retain))
    retain_ratios = truth_ratios(lm, bench.retain) if retain_ratios is None else retain_ratios
    world_ratios = truth_ratios(lm, bench.world) if world_ratios is None else world_ratios
    parts = [_mean(retain_prob), rouge["retain"], truth_ratio_score(retain_ratios, on_forget=False),
             _mean(option_probabilities(bench.world, world_ratios)), rouge["world"],
             truth_ratio_score(world_ratios, on_forget=False)]
    return MetricResult("model_utility", harmonic_mean(parts), parts, True,
                        "TOFU model utility: harmonic mean of probability, ROUGE-L recall and truth-ratio score "
                        f"on retain and world; per_example: {', '.join(UTILITY_PARTS)}")


def world_perplexity(lm: LanguageModel, bench: Benchmark) -> MetricResult:
    """exp(total NLL / total tokens) of the world split's answers given their questions.

    Only answer tokens count: obliviate's models are trained on answers, never on question text,
    so a question's tokens would measure nothing but noise. Lower is better: a model whose language
    broke has a high perplexity even on facts it was never asked to forget. per_example: each
    answer's own perplexity exp(mean NLL). Exponents are capped at 700 (no overflow).
    """
    records = bench.world
    if not records:
        raise ValueError("world_perplexity needs records in the world split; it has none")
    lps = lm.log_probs([format_prompt(r["question"]) for r in records], [format_answer(r["answer"]) for r in records])
    tokens = sum(len(lp) for lp in lps)
    if tokens == 0:
        raise ValueError("world_perplexity got no scored tokens")
    total_nll = -sum(lp.double().sum().item() for lp in lps)
    per_text = [math.exp(min(-lp.double().mean().item(), _MAX_EXP)) for lp in lps]
    return MetricResult("world_perplexity", math.exp(min(total_nll / tokens, _MAX_EXP)), per_text, False,
                        "perplexity of world-fact answers given their questions, exp(total NLL / tokens); "
                        "fluency, lower is better")


_WORD_EDGES = re.compile(r"^\W+|\W+$")
_LETTER_RUN = re.compile(r"([^\W\d_])\1{3}")  # one letter 4+ times in a row: no English word does that


def _norm(word: str) -> str:
    return _WORD_EDGES.sub("", word.lower())


def is_degenerate(text: str) -> bool:
    """True for output that is not an answer but a failure mode of a broken (over-unlearned) model.

    Degenerate: empty after strip; contains U+FFFD (broken bytes); no letter or digit at all; a word
    repeated 3+ times in a row; one word making up >= 60 % of 4+ words; a letter repeated 4+ times
    in a row ("aaaa"). Words are compared lower-cased without surrounding punctuation
    ("No, no, no." is degenerate). "I don't know" is not: refusing is not degenerating.
    """
    if not text.strip() or "\ufffd" in text or not any(c.isalnum() for c in text):
        return True
    if _LETTER_RUN.search(text):
        return True
    words = [_norm(w) for w in text.split()]
    if any(words[i] == words[i + 1] == words[i + 2] for i in range(len(words) - 2)):
        return True
    return len(words) >= 4 and Counter(words).most_common(1)[0][1] / len(words) >= 0.6


def degenerate_share(generations: list[str]) -> MetricResult:
    """`degenerate_share`: the share of `generations` that `is_degenerate`; lower is better.

    With no generations the value is None ("n/a").
    """
    flags = [float(is_degenerate(g)) for g in generations]
    if not flags:
        return MetricResult("degenerate_share", None, [], False, "n/a: no generations to check")
    return MetricResult("degenerate_share", sum(flags) / len(flags), flags, False,
                        "share of greedy answers that are empty, repetitive or not text (lower is better)")
