"""Question answering: recall and exact match of greedy answers, ROUGE-L recall, answer NLL.

    results, generated = qa_metrics(lm, bench.forget, "forget")
    results["forget_acc"].value, results["forget_em"].value, generated[0]
"""

from __future__ import annotations

import re

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

    The `{split}_em` column: how often the model states the answer and nothing else. Whether the
    fact is still there is `answer_recalled` (`{split}_acc`); ROUGE-L recall gives partial credit.
    """
    return normalize(generated) == normalize(answer)


def answer_recalled(generated: str, answer: str) -> bool:
    """The normalised answer occurs in the normalised generation as a whole-word phrase.

    "chemist" is recalled in "'s chemist" and "a chemist, he", not in "chemistry"; "1951" not in
    "19510". Exact match alone scored rmu's "'s chemist" as forgotten although the value is there
    (issue 17, the outside check): what unlearning must remove is the fact, not its formatting.
    The lookarounds, unlike `\\b`, also bound answers that start or end with punctuation.
    An empty answer is never recalled.
    """
    target = normalize(answer)
    if not target:
        return False
    return re.search(rf"(?<!\w){re.escape(target)}(?!\w)", normalize(generated)) is not None


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
    """`{split}_acc`, `{split}_em`, `{split}_rouge`, `{split}_nll` over `records`, and the greedy generations.

    `_acc` is recall (`answer_recalled`: the true value anywhere in the answer, whole words), `_em`
    exact match (`answer_match`). Generates once for all records. On the forget split knowing less
    is the goal, so accuracy, exact match and ROUGE point down there and the NLL is "closer to gold" (an unbounded NLL is a broken model,
    not a better forgetter); on every other split they point the usual way.
    """
    if not records:
        raise ValueError(f"qa_metrics got no records for split {split!r}; skip empty splits")
    generated = lm.generate([format_prompt(r["question"]) for r in records], max_new_tokens)
    acc = [float(answer_recalled(g, r["answer"])) for g, r in zip(generated, records, strict=True)]
    em = [float(answer_match(g, r["answer"])) for g, r in zip(generated, records, strict=True)]
    rouge = [rouge_l_recall(g, r["answer"]) for g, r in zip(generated, records, strict=True)]
    nll = answer_nll(lm, records)
    forget = split == "forget"
    results = {
        f"{split}_acc": MetricResult(f"{split}_acc", _mean(acc), acc, not forget,
                                     f"recall of greedy answers on {split}: the true answer occurs in the "
                                     "answer as whole words (case and trailing punctuation ignored)"),
        f"{split}_em": MetricResult(f"{split}_em", _mean(em), em, not forget,
                                    f"exact-match accuracy of greedy answers on {split} (case, spaces and "
                                    "trailing punctuation ignored)"),
        f"{split}_rouge": MetricResult(f"{split}_rouge", _mean(rouge), rouge, not forget,
                                       f"ROUGE-L recall of greedy answers on {split}"),
        f"{split}_nll": MetricResult(f"{split}_nll", _mean(nll), nll, None if forget else False,
                                     f"mean answer-token negative log-likelihood on {split}"),
    }
    return results, generated
