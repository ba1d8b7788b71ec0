"""Verification without a retrained model: the model on the forget records against itself on reference records.

    from obliviate.requests import load_request, load_request_data
    from obliviate.requests.verify import verify
    evidence = verify(lm, load_request_data(load_request("request.yaml")))
    evidence["verdict"]   # removed | suppressed | not forgotten | inconclusive, with every test's bounds

- kind `data`: the reference is subjects the model never saw (holdout records, or counterfactual
  subjects with the same question templates). Every attack of `obliviate.attacks` runs on the forget
  subjects and, identically, on the reference subjects; plain recall and each attack are compared
  (unpaired, subject bootstrap), relearning by its lift over the same items before relearning.
  Membership inference (LOSS, zlib; Min-K% and Min-K%++ on passages) compares the AUC of forget vs
  reference with chance, 0.5.
- kind `knowledge`: multiple-choice accuracy on the probes, plain and under attack, against chance
  (`requests.knowledge`); the neighbour probes' accuracy is reported beside it (what must be kept).

The decision rule is `obliviate.attacks.verdict.decide`, the same one the benchmark applies with gold.
"""

from __future__ import annotations

import math
from dataclasses import replace
from statistics import NormalDist

from pydantic import BaseModel, ConfigDict, Field

from obliviate.attacks import judge, run_attacks
from obliviate.attacks.membership import membership_scores
from obliviate.config import AttackConfig, VerdictConfig
from obliviate.data import Benchmark
from obliviate.errors import ObliviateError


class VerifySettings(BaseModel):
    """What verification runs: the attacks and the verdict's margins (a RunConfig's `attacks` and `verdict`)."""
    model_config = ConfigDict(extra="forbid")
    attacks: AttackConfig = Field(default_factory=AttackConfig, description="attack settings")
    verdict: VerdictConfig = Field(default_factory=VerdictConfig, description="margins, alpha, power")
    mia_k: float = Field(0.2, gt=0, le=1, description="Min-K% share of tokens")
    prefix_words: int = Field(2, ge=1, description="words of each passage given as its prompt for Min-K%")


def reference_view(bench: Benchmark) -> Benchmark:
    """The same benchmark with the reference (holdout) subjects in the forget seat, for the attacks."""
    bios = [dict(b, split="forget") for b in bench.bios_of("holdout")]
    return replace(bench, forget=bench.holdout, holdout=[], bios=bios + [b for b in bench.bios if b["split"] == "retain"])


def reference_records_needed(cfg: VerdictConfig) -> int:
    """Fewest reference records with which the membership AUC test could ever reach `cfg.power` at the
    AUC margin, however many forget records there are, were the model at chance: Hanley & McNeil's
    (1982) AUC variance at 0.5 is (1/n_forget + 1/n_reference) / 12 (plus terms of order
    1/(n_f n_r)), so the reference alone contributes 1 / (12 n_reference). A small *forget* set is
    not an error: its verdict is inconclusive and says how many subjects would decide it."""
    z = NormalDist().inv_cdf
    return math.ceil(1 / (12 * (cfg.auc_margin / (z(1 - cfg.alpha) + z(1 - (1 - cfg.power) / 2))) ** 2))


def check_power(bench: Benchmark, cfg: VerdictConfig, where: str) -> None:
    """Raise before anything runs when the reference set is too small for the membership test ever to decide."""
    needed, have = reference_records_needed(cfg), len(bench.holdout)
    if have < needed:
        raise ObliviateError(f"{where}: the reference holds {have} QA records, too few for any power; at least "
                             f"{needed} are needed at verdict.auc_margin={cfg.auc_margin} (add reference records, "
                             "or set synthesize_reference: true with reference_subjects)")


def verify_data(lm, bench: Benchmark, settings: VerifySettings, forget_side: dict | None = None,
                passages: bool | None = None) -> dict:
    """Gold-free verdict of a data request: `bench.forget` against `bench.holdout` (the reference).

    `forget_side`: the model's `run_attacks` on `bench` when already computed (the benchmark's
    gold-based verdict attacks the same items). `passages`: test membership on passages too
    (default: when both sides have some)."""
    if passages is None:
        passages = settings.attacks.passages or bool(bench.bios_of("forget") and bench.bios_of("holdout"))
    forget_side = forget_side if forget_side is not None else run_attacks(lm, bench, settings.attacks)
    reference_side = run_attacks(lm, reference_view(bench), settings.attacks)
    mia, skipped = membership_scores(lm, bench, passages, settings.mia_k, settings.prefix_words)
    verdict = judge(forget_side, reference_side, settings.verdict, getattr(lm, "changes_weights", True),
                    mia, gold_free=True)
    verdict["skipped"] |= skipped
    return verdict


def verify_knowledge(lm, probes: list[dict], neighbours: list[dict], settings: VerifySettings) -> dict:
    """Verdict of a knowledge request: probe accuracy, plain and attacked, against chance."""
    from obliviate.evals.multiple_choice import choice_accuracy
    from obliviate.requests.knowledge import knowledge_tests

    cand, chance = knowledge_tests(lm, probes, neighbours, settings.attacks)
    verdict = judge(cand, chance, settings.verdict, getattr(lm, "changes_weights", True)) | {"reference": "chance"}
    if neighbours:
        acc = choice_accuracy(lm, neighbours)
        verdict["neighbour_acc"] = round(sum(acc) / len(acc), 4)
    return verdict


def verify(lm, data, settings: VerifySettings | None = None) -> dict:
    """The verdict for one model on a loaded request (`requests.RequestData`)."""
    settings = settings or VerifySettings()
    if data.kind == "knowledge":
        return verify_knowledge(lm, data.probes, data.neighbour_probes, settings)
    return verify_data(lm, data.benchmark(), settings)
