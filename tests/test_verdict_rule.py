"""The equivalence verdict on constructed recoveries (issue 17): equivalent, above, underpowered."""

import numpy as np

from obliviate.attacks import Recovery, judge
from obliviate.attacks.verdict import Membership, bound_test, decide, paired, rank_auc, unpaired
from obliviate.config import VerdictConfig


def rec(rate: float, subjects: int, per: int = 10, seed: int = 0, name: str = "p") -> Recovery:
    """`subjects` x `per` items recovered with probability `rate`, seeded."""
    rng = np.random.default_rng(seed)
    return Recovery(rng.binomial(1, rate, subjects * per).astype(float).tolist(),
                    [f"{name}{i}" for i in range(subjects) for _ in range(per)])


def attacks(rate_plain, rate_attack, subjects, seed, name="p"):
    return {"plain": rec(rate_plain, subjects, seed=seed, name=name),
            "relearning": rec(rate_attack, subjects, seed=seed + 1, name=name)}


CFG = VerdictConfig()


def test_equivalent_recoveries_are_removed_with_enough_subjects():
    v = judge(attacks(0.02, 0.03, 40, 1), attacks(0.02, 0.03, 40, 11, "q"), CFG, gold_free=True)
    assert v["verdict"] == "removed", v
    assert all(e["upper"] < CFG.margin for e in v["evidence"].values())


def test_same_rates_on_few_subjects_are_inconclusive_and_say_how_many_would_decide():
    # 3 subjects at a 30 % base rate: no bound can be narrower than the margin
    v = judge(attacks(0.3, 0.3, 3, 2), attacks(0.3, 0.3, 3, 12, "q"), CFG, gold_free=True)
    assert v["verdict"] == "inconclusive"
    assert v["subjects_needed"] is not None and v["subjects_needed"] > 3
    # with that many subjects the same rates are decided (allow bootstrap noise: 1.5x)
    n = int(v["subjects_needed"] * 1.5)
    assert judge(attacks(0.3, 0.3, n, 3), attacks(0.3, 0.3, n, 13, "q"), CFG, gold_free=True)["verdict"] == "removed"


def test_plain_above_is_not_forgotten_and_attack_above_is_suppressed():
    ref = attacks(0.02, 0.03, 40, 4, "q")
    assert judge(attacks(0.9, 0.9, 40, 5), ref, CFG, gold_free=True)["verdict"] == "not forgotten"
    v = judge(attacks(0.02, 0.6, 40, 6), ref, CFG, gold_free=True)
    assert (v["verdict"], v["deciding"]) == ("suppressed", "relearning")


def test_a_wrapper_is_suppressed_by_construction():
    ref = attacks(0.02, 0.03, 40, 4, "q")
    v = judge(attacks(0.02, 0.03, 40, 7), ref, CFG, changes_weights=False, gold_free=True)
    assert v["verdict"] == "suppressed" and v["deciding"].startswith("weights unchanged")


def test_a_small_significant_excess_is_not_removed():
    # kl's failure mode: forget 0.09 vs reference 0.02 on 10 people was labelled removed by the old rule
    v = judge(attacks(0.09, 0.03, 10, 8), attacks(0.02, 0.03, 10, 18, "q"), CFG, gold_free=True)
    assert v["verdict"] != "removed"
    assert not v["evidence"]["plain"]["equivalent"]


def test_paired_needs_the_same_items_and_unpaired_does_not():
    a, b = rec(0.5, 10), rec(0.5, 10, name="q")
    assert unpaired(a, b, 200, 0)[2] == 10
    try:
        paired(a, b, 200, 0)
    except ValueError as err:
        assert "different items" in str(err)
    else:
        raise AssertionError("paired accepted different items")


def test_bound_test_upper_bound_and_needed_subjects_scale():
    boot = np.random.default_rng(0).normal(0.0, 0.02, 4000)
    e = bound_test(0.0, boot, 30, 10, CFG)
    assert abs(e["upper"] - 1.645 * 0.02) < 0.004 and e["equivalent"]
    # needed n = n * ((z_.95 + z_.8) * se / margin)^2 = 30 * (2.487 * 0.02 / 0.05)^2 ≈ 30
    assert 25 <= e["subjects_needed"] <= 35


def test_rank_auc_matches_sklearn_and_membership_at_chance_is_within_margin():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    m, n = rng.normal(0.3, 1, 50), rng.normal(0, 1, 70)
    assert abs(rank_auc(m, n) - roc_auc_score([1] * 50 + [0] * 70, [*m, *n])) < 1e-12
    mem = Membership(rng.normal(0, 1, 400).tolist(), [f"p{i // 10}" for i in range(400)],
                     rng.normal(0, 1, 400).tolist(), [f"q{i // 10}" for i in range(400)])
    v = judge(attacks(0.02, 0.02, 40, 1), attacks(0.02, 0.02, 40, 11, "q"), CFG, cand_membership={"mia_loss": mem},
              gold_free=True)
    assert v["evidence"]["mia_loss"]["two_sided"] and v["evidence"]["mia_loss"]["equivalent"]
    leaky = Membership((rng.normal(0, 1, 400) + 1.5).tolist(), mem.member_subjects, mem.nonmembers,
                       mem.nonmember_subjects)
    v = judge(attacks(0.02, 0.02, 40, 1), attacks(0.02, 0.02, 40, 11, "q"), CFG, cand_membership={"mia_loss": leaky},
              gold_free=True)
    assert v["verdict"] == "suppressed" and v["deciding"] == "mia_loss"


def test_decide_keeps_the_order_of_the_rule():
    e = lambda above, eq: {"above": above, "equivalent": eq, "family_lower": 0.1, "subjects_needed": 50}  # noqa
    assert decide({"plain": e(True, False), "x": e(True, False)})["verdict"] == "not forgotten"
    assert decide({"plain": e(False, False), "x": e(True, False)})["verdict"] == "inconclusive"
    assert decide({"plain": e(False, True), "x": e(False, True)})["verdict"] == "removed"
