"""Question answering: exact-match accuracy and ROUGE-L recall of greedy answers, answer NLL.

    results, generated = qa_metrics(lm, bench.forget, "forget")
    results["forget_acc"].value, generated[0]
"""

from __future__ import annotations

from rouge_score import rouge_scorer

from obliviate.data import format_answer, format_prompt
from obliviate.evals.metric import MetricResult
from obliviate.models.protocol import LanguageModel

_ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def normalize(text: str) -> str:
    """Lower-cased, without surrounding whitespace or trailing '.', '!', ','."""
    return text.strip().rstrip(".!,").strip().lower()


def answer_match(generated: str, answer: str) -> bool:
    """Exact match after `normalize` on both sides: "Paris." matches "paris", "Paris, France" does not.

    Strict on purpose: the built-in benchmark's answers are short (a name, a city, a number), so
    any extra word is a different answer; ROUGE-L recall gives the partial credit.
    """
    return normalize(generated) == normalize(answer)


def rouge_l_recall(generated: str, answer: str) -> float:
    """ROUGE-L recall: longest common word subsequence / words in the answer (rouge-score's
    tokenizer: lower-cased, punctuation dropped, no stemming). "born in Paris" vs "Paris" = 1.0."""
    return _ROUGE.score(answer, generated)["rougeL"].recall


def answer_nll(lm: LanguageModel, records: list[dict]) -> list[float]:
    """Per record, the mean negative log-likelihood of the true answer's tokens."""
    lps = lm.log_probs([format_prompt(r["question"]) for r in records],
                       [format_answer(r["answer"]) for r in records])
    return [-lp.mean().item() for lp in lps]


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def qa_metrics(lm: LanguageModel, records: list[dict], split: str, max_new_tokens: int = 24
               ) -> tuple[dict[str, MetricResult], list[str]]:
    """`{split}_acc`, `{split}_rouge`, `{split}_nll` over `records`, and the greedy generations.

    Generates once for all records. On the forget split knowing less is the goal, so accuracy and
    ROUGE point down there and the NLL is "closer to gold" (an unbounded NLL is a broken model,
    not a better forgetter); on every other split they point the usual way.
    """
    if not records:
        raise ValueError(f"qa_metrics got no records for split {split!r}; skip empty splits")
    generated = lm.generate([format_prompt(r["question"]) for r in records], max_new_tokens)
    acc = [float(answer_match(g, r["answer"])) for g, r in zip(generated, records, strict=True)]
    rouge = [rouge_l_recall(g, r["answer"]) for g, r in zip(generated, records, strict=True)]
    nll = answer_nll(lm, records)
    forget = split == "forget"
    results = {
        f"{split}_acc": MetricResult(f"{split}_acc", _mean(acc), acc, not forget,
                                     f"exact-match accuracy of greedy answers on {split}"),
        f"{split}_rouge": MetricResult(f"{split}_rouge", _mean(rouge), rouge, not forget,
                                       f"ROUGE-L recall of greedy answers on {split}"),
        f"{split}_nll": MetricResult(f"{split}_nll", _mean(nll), nll, None if forget else False,
                                     f"mean answer-token negative log-likelihood on {split}"),
    }
    return results, generated
