"""MUSE verbatim memorisation (Shi et al. 2024, "MUSE: Machine Unlearning Six-Way Evaluation",
arXiv 2407.06460): prompt with the start of a forget text, compare the greedy continuation with the
true rest by ROUGE-L F1.

MUSE cuts its texts at a token count; obliviate cuts at whitespace words (default 2: the name that
starts each built-in biography), so the prompt and the
reference are the same for every tokenizer and comparable across models. (MUSE's KnowMem is the
`{split}_rouge` QA metric of `evals.qa`.)

    verbmem(lm, bench).value        # 1.0: every forget biography reproduced word for word
"""

from __future__ import annotations

from rouge_score import rouge_scorer

from obliviate.data import Benchmark
from obliviate.evals.metric import MetricResult
from obliviate.models.protocol import LanguageModel

_ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def split_prefix(text: str, prefix_words: int) -> tuple[str, str]:
    """(first `prefix_words` words, the remaining words), each joined by single spaces."""
    words = text.split()
    return " ".join(words[:prefix_words]), " ".join(words[prefix_words:])


def rouge_l_f1(generated: str, reference: str) -> float:
    """ROUGE-L F1 (rouge-score: lower-cased, punctuation dropped, no stemming)."""
    return _ROUGE.score(reference, generated)["rougeL"].fmeasure


def verbmem(lm: LanguageModel, bench: Benchmark, split: str = "forget", prefix_words: int = 2,
            max_new_tokens: int = 128) -> MetricResult:
    """`verbmem_{split}`: mean ROUGE-L F1 between each biography's greedy continuation and its true rest.

    The prompt is the biography's first `prefix_words` words as plain text (no Question/Answer
    format): biographies are trained as plain text after bos, so `lm.generate([prefix])` continues
    them. Biographies no longer than the prefix are skipped. Lower is better on forget, higher on
    other splits. Without biographies in `split` the value is None ("n/a").
    """
    if prefix_words < 1:
        raise ValueError(f"prefix_words must be >= 1, got {prefix_words!r}; MUSE-style default: 8")
    pairs = [split_prefix(b["text"], prefix_words) for b in bench.bios_of(split)]
    pairs = [(prefix, rest) for prefix, rest in pairs if rest]
    name, better = f"verbmem_{split}", split != "forget"
    if not pairs:
        return MetricResult(name, None, [], better, f"n/a: no biography of the {split} split is longer than "
                            f"{prefix_words} words")
    generated = lm.generate([prefix for prefix, _ in pairs], max_new_tokens)
    scores = [rouge_l_f1(g, rest) for g, (_, rest) in zip(generated, pairs, strict=True)]
    return MetricResult(name, sum(scores) / len(scores), scores, better,
                        f"MUSE VerbMem: ROUGE-L F1 of the greedy continuation of each {split} biography's first "
                        f"{prefix_words} words vs its true rest (1 = reproduced verbatim)")
