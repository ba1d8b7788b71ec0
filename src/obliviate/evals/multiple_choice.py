"""Multiple-choice accuracy by choice log-likelihood (WMDP / MMLU style), and built-in world choices.

    questions = load_choices("wmdp-bio.json")            # or world_choice_questions()
    multiple_choice_metric(lm, questions, "wmdp_bio_acc", higher_is_better=False).value

The model picks the choice whose answer tokens it finds most likely after the question, the
"acc" of lm-evaluation-harness (Gao et al. 2021) as used by WMDP (Li et al. 2024,
arXiv 2403.03218), in the cloze form: choices are scored as answers after the "Question: ...
Answer:" prompt, so no letter-answering skill is needed.
Scores are summed over the answer's tokens (the harness's "acc"; its "acc_norm" divides by length).
Like the harness by default, an instruct model is scored without its chat template
(`models.hf.plain_prompts`): the question is about knowledge, not answer style.
"""

from __future__ import annotations

import random

from obliviate.data import format_answer, format_prompt
from obliviate.data.world import CAPITALS, ELEMENTS
from obliviate.evals.metric import MetricResult
from obliviate.models.protocol import LanguageModel


def choice_log_likelihoods(lm: LanguageModel, questions: list[dict]) -> list[list[float]]:
    """Per question, the summed log-probability of each choice's tokens after the question."""
    from obliviate.models.hf import plain_prompts

    prompts = [format_prompt(q["question"]) for q in questions for _ in q["choices"]]
    answers = [format_answer(c) for q in questions for c in q["choices"]]
    with plain_prompts(lm):
        flat = [lp.sum().item() for lp in lm.log_probs(prompts, answers)] if prompts else []
    out, i = [], 0
    for q in questions:
        out.append(flat[i : i + len(q["choices"])])
        i += len(q["choices"])
    return out


def choice_accuracy(lm: LanguageModel, questions: list[dict]) -> list[float]:
    """1.0 where the most likely choice is the correct one (ties go to the first), else 0.0."""
    scores = choice_log_likelihoods(lm, questions)
    return [float(max(range(len(s)), key=s.__getitem__) == q["answer"]) for s, q in zip(scores, questions)]


def multiple_choice_metric(lm: LanguageModel, questions: list[dict], name: str, higher_is_better: bool | None = True,
                           what: str = "multiple-choice questions") -> MetricResult:
    if not questions:
        raise ValueError(f"{name}: no multiple-choice questions to evaluate")
    acc = choice_accuracy(lm, questions)
    chance = sum(1 / len(q["choices"]) for q in questions) / len(questions)
    return MetricResult(name, sum(acc) / len(acc), acc, higher_is_better,
                        f"accuracy on {len(questions)} {what}, choosing the choice of highest log-likelihood "
                        f"in the plain prompt format (chance {chance:.2f})")


def _question(question: str, answer: str, pool: list[str], rng: random.Random, n_wrong: int) -> dict:
    choices = [answer, *rng.sample(sorted({p for p in pool if p != answer}), n_wrong)]
    rng.shuffle(choices)
    return {"question": question, "choices": choices, "answer": choices.index(answer)}


def world_choice_questions(per_kind: int | None = None, n_wrong: int = 3, seed: int = 0) -> list[dict]:
    """Capitals, chemical symbols and small sums as four-way questions: facts a pretrained model
    knows before any fine-tuning, so damage to them is damage to pretrained knowledge.

    `per_kind` caps each kind (None: all 40 capitals, 30 elements and 30 sums); the same seed
    gives the same questions and choice order.
    """
    rng = random.Random(seed)
    capitals, elements = list(CAPITALS.items()), list(ELEMENTS.items())
    sums = [(a, b) for a, b in ((rng.randint(2, 49), rng.randint(2, 49)) for _ in range(30))]
    if per_kind is not None:
        capitals, elements, sums = capitals[:per_kind], elements[:per_kind], sums[:per_kind]
    out = [_question(f"What is the capital of {c}?", city, list(CAPITALS.values()), rng, n_wrong)
           for c, city in capitals]
    out += [_question(f"What is the chemical symbol of {e}?", sym, list(ELEMENTS.values()), rng, n_wrong)
            for e, sym in elements]
    for a, b in sums:
        near = [str(t) for t in range(a + b - 6, a + b + 7) if t > 0]
        out.append(_question(f"What is {a} plus {b}?", str(a + b), near, rng, n_wrong))
    return out


ChoiceSets = dict[str, tuple[list[dict], bool | None]]


def choice_sets(world_per_kind: int | None = None, forget_files: dict[str, str] | None = None,
                utility_files: dict[str, str] | None = None) -> ChoiceSets:
    """Metric name -> (questions, higher_is_better) for the evaluation suite.

    `world_mc_acc` (built-in world facts; world_per_kind=0 leaves it out), `mc_<name>_acc` for
    each WMDP-style file of knowledge to forget (lower is better) and each MMLU-style file of
    knowledge to keep (higher is better).
    """
    from obliviate.data.loaders import load_choices

    sets: ChoiceSets = {}
    if world_per_kind != 0:
        sets["world_mc_acc"] = (world_choice_questions(world_per_kind), True)
    for files, better in ((forget_files or {}, False), (utility_files or {}, True)):
        for name, path in files.items():
            sets[f"mc_{name}_acc"] = (load_choices(path), better)
    return sets
