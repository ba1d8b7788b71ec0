"""Membership inference: scores by hand, AUC vs scikit-learn, token_stats vs full logits, the suite via fakes
and on passages of a real tiny model."""

import math
import random
import zlib

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from obliviate.data import Benchmark, format_answer, format_prompt
from obliviate.evals.mia import (MIA_KEYS, auc, loss_score, mia_samples, mia_suite, min_k_plus_plus_score,
                                 min_k_score, passage_samples, priv_leak, privleak_metric, zlib_score)
from obliviate.models.hf import HFLanguageModel
from obliviate.models.protocol import LanguageModel, SupportsTokenStats
from obliviate.models.settings import TinyModelConfig
from obliviate.models.tiny import build_tiny_model
from obliviate.models.tokenizer import train_tokenizer

LP = torch.tensor([-0.5, -2.0, -0.1, -4.0, -1.0, -3.0, -0.2, -0.7, -1.5, -2.5])
# sum = -15.5 over 10 tokens; sorted: -4.0, -3.0, -2.5, -2.0, -1.5, -1.0, -0.7, -0.5, -0.2, -0.1


def test_loss_score_is_mean_log_prob():
    assert loss_score(LP) == pytest.approx(-1.55)  # -15.5 / 10 = -(mean NLL): higher = member


@pytest.mark.parametrize("k, expected", [
    (0.2, -3.5),     # floor(0.2 * 10) = 2 lowest: (-4.0 - 3.0) / 2
    (0.4, -2.875),   # 4 lowest: (-4.0 - 3.0 - 2.5 - 2.0) / 4 = -11.5 / 4
    (0.05, -4.0),    # floor(0.5) = 0 -> at least 1 token: the lowest, -4.0
    (1.0, -1.55),    # every token: the LOSS score
])
def test_min_k_score_by_hand(k, expected):
    assert min_k_score(LP, k) == pytest.approx(expected)


def test_min_k_rejects_bad_k_and_empty():
    with pytest.raises(ValueError, match="k must be"):
        min_k_score(LP, 0.0)
    with pytest.raises(ValueError, match="no tokens"):
        min_k_score(torch.tensor([]))


def test_zlib_score_by_hand():
    text = "Question: Who?\nAnswer: Bob"
    n_bytes = len(zlib.compress(text.encode()))  # 34 with standard zlib
    # -(mean NLL) / zlib bytes = -1.55 / n_bytes (REFERENCE's mean NLL / zlib, negated: higher = member)
    assert zlib_score(LP, text) == pytest.approx(-1.55 / n_bytes)
    assert zlib_score(LP, text) > zlib_score(LP - 1, text)  # less likely text -> lower score


def test_min_k_plus_plus_by_hand():
    lp = torch.tensor([-1.0, -2.0, -0.5, -3.0, -1.5])
    mu = torch.tensor([-1.5, -1.0, -1.0, -2.0, -1.5])
    sigma = torch.tensor([0.5, 1.0, 0.25, 2.0, 1.0])
    # z = (lp - mu) / sigma = [0.5/0.5, -1/1, 0.5/0.25, -1/2, 0/1] = [1.0, -1.0, 2.0, -0.5, 0.0]
    assert min_k_plus_plus_score(lp, mu, sigma, k=0.2) == pytest.approx(-1.0)   # 1 lowest
    assert min_k_plus_plus_score(lp, mu, sigma, k=0.4) == pytest.approx(-0.75)  # (-1.0 - 0.5) / 2
    assert min_k_plus_plus_score(lp, mu, sigma, k=1.0) == pytest.approx(0.3)    # 1.5 / 5


def test_min_k_plus_plus_guards_zero_sigma():
    # sigma 0 is floored at 1e-3: z = (-2.0 + 1.5) / 1e-3 = -500, finite
    z = min_k_plus_plus_score(torch.tensor([-2.0]), torch.tensor([-1.5]), torch.tensor([0.0]))
    assert z == pytest.approx(-500.0)
    assert min_k_plus_plus_score(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.0])) == 0.0
    with pytest.raises(ValueError, match="differ in length"):
        min_k_plus_plus_score(torch.tensor([0.0, 1.0]), torch.tensor([0.0]), torch.tensor([1.0]))


@pytest.mark.parametrize("members, nonmembers, expected", [
    ([3.0, 4.0], [1.0, 2.0], 1.0),        # perfect separation
    ([1.0, 2.0], [3.0, 4.0], 0.0),        # reversed
    ([1.0], [1.0], 0.5),                  # a tie counts half
    ([0.9, 0.4], [0.5, 0.1], 0.75),       # 3 of 4 (member, non-member) pairs ordered: 0.4 < 0.5 is not
])
def test_auc_by_hand(members, nonmembers, expected):
    assert auc(members, nonmembers) == pytest.approx(expected)


def test_auc_matches_sklearn_with_members_labelled_one():
    rng = np.random.default_rng(0)
    m, n = rng.normal(0.3, 1, 50).tolist(), rng.normal(0, 1, 70).tolist()
    assert auc(m, n) == pytest.approx(roc_auc_score([1] * 50 + [0] * 70, m + n))
    with pytest.raises(ValueError, match="members and non-members"):
        auc(m, [])


def test_priv_leak_by_hand():
    assert priv_leak(0.8, 0.5) == pytest.approx(60.0)   # (0.8 - 0.5) / 0.5 * 100: leaks
    assert priv_leak(0.4, 0.5) == pytest.approx(-20.0)  # (0.4 - 0.5) / 0.5 * 100: over-unlearned
    assert priv_leak(0.55, 0.55) == 0.0
    m = privleak_metric(1.0, 0.5)
    assert (m.name, m.value, m.higher_is_better) == ("priv_leak", pytest.approx(100.0), None)
    with pytest.raises(ValueError, match="gold AUC"):
        priv_leak(0.5, 0.0)


# --- token_stats of the real HF model ---------------------------------------------------------

TEXTS = [format_prompt(f"Where was Alara Ash{t} born?") + format_answer(c)
         for t in ("grove", "wood", "mere") for c in ("Lisbon", "Oslo", "Kyoto")] * 5


@pytest.fixture(scope="module")
def hf_lm():
    tok = train_tokenizer(TEXTS, 400)
    cfg = TinyModelConfig(vocab_size=400, hidden_size=32, intermediate_size=64, layers=1, heads=2)
    return HFLanguageModel(build_tiny_model(cfg, tok, seed=0), tok)


def test_token_stats_match_full_logits(hf_lm):
    tok = hf_lm.tokenizer
    prompts = [format_prompt("Where was Alara Ashgrove born?"), "", "Q"]
    answers = [" Lisbon", TEXTS[4], " Kyoto Oslo Lisbon"]
    stats = hf_lm.token_stats(prompts, answers)
    lps = hf_lm.log_probs(prompts, answers)
    assert isinstance(hf_lm, SupportsTokenStats)
    for (lp, mu, sigma), ref_lp, p, a in zip(stats, lps, prompts, answers):
        p_ids, a_ids = tok.encode(p, add_special_tokens=False), tok.encode(a, add_special_tokens=False)
        ids = torch.tensor([[tok.bos_token_id, *p_ids, *a_ids]])
        with torch.no_grad():
            logp = torch.log_softmax(hf_lm.model(input_ids=ids).logits[0].double(), -1)
        # position t predicts ids[t + 1]; answer tokens sit at 1 + len(p) ... so predictions start at len(p)
        at = logp[len(p_ids): len(p_ids) + len(a_ids)]
        probs = at.exp()
        want_mu = (probs * at).sum(-1)
        want_sigma = ((probs * at.square()).sum(-1) - want_mu.square()).sqrt()  # the paper's form
        want_lp = at.gather(-1, torch.tensor(a_ids).unsqueeze(-1)).squeeze(-1)
        assert len(lp) == len(a_ids)
        assert torch.allclose(lp.double(), want_lp, atol=1e-4)
        assert torch.allclose(mu.double(), want_mu, atol=1e-4)
        assert torch.allclose(sigma.double(), want_sigma, atol=1e-3)
        assert torch.equal(lp, ref_lp)  # the same positions and values as log_probs


def test_token_stats_batching_is_invariant(hf_lm):
    prompts, answers = [""] * 3, [TEXTS[0], " Oslo", TEXTS[7]]
    whole = hf_lm.token_stats(prompts, answers)
    hf_lm.batch_size = 1
    try:
        single = hf_lm.token_stats(prompts, answers)
    finally:
        hf_lm.batch_size = 64
    for a, b in zip(whole, single):
        assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(a, b))


# --- mia_suite through fakes ------------------------------------------------------------------

def qa(question, answer):
    return {"question": question, "answer": answer, "paraphrased_answer": answer, "perturbed_answers": [answer],
            "phrasings": [question], "person": "X", "attribute": "a"}


def bio(split, text):
    return {"person": text.split(":")[0], "split": split, "text": text}


FORGET = [qa("F1?", "a"), qa("F2?", "b"), qa("F3?", "c")]
HOLDOUT = [qa("H1?", "d"), qa("H2?", "e"), qa("H3?", "f"), qa("H4?", "g")]
# Passages: the prefix (first 2 words) of a forget passage holds an "F", of a holdout one none.
BIOS = [bio("forget", "Fay Ames: a, b, c."), bio("forget", "Flo Birk: b, c, a."),
        bio("holdout", "Hal Berg: d, e, f."), bio("holdout", "Ida Moss: e, d, g."), bio("holdout", "Jo Lund: g, f, d."),
        bio("retain", "Fern Ray: x, y, z.")]  # retain passages are neither members nor non-members here
MEMBER_LP, NONMEMBER_LP = [-0.1, -0.3, -0.2], [-2.0, -3.0, -1.0]


class TextFake:
    """Scores forget answers and passages likely, holdout ones unlikely (by an "F" in the prompt)."""

    name = "text-fake"

    def __init__(self):
        self.calls, self.prompts = 0, []

    def log_probs(self, prompts, answers):
        self.calls += 1
        self.prompts += prompts
        assert all(a.startswith(" ") for a in answers), "answers and passage rests start with a space"
        return [torch.tensor(MEMBER_LP if "F" in p else NONMEMBER_LP) for p in prompts]

    def generate(self, prompts, max_new_tokens=24):
        return [""] * len(prompts)

    def hidden_states(self, texts):
        raise NotImplementedError


class StatsFake(TextFake):
    """Also exposes token_stats: mu = -1, sigma = 1, so z = lp + 1 (members > 0 > non-members)."""

    def token_stats(self, prompts, answers):
        assert not any(p.startswith("Question: ") for p in prompts), "token_stats serve the passage attacks"
        return [(lp, torch.full_like(lp, -1.0), torch.ones_like(lp)) for lp in super().log_probs(prompts, answers)]

    def log_probs(self, prompts, answers):
        assert all(p.startswith("Question: ") for p in prompts), "with token_stats, passages are scored once through it"
        return super().log_probs(prompts, answers)


def bench(holdout=HOLDOUT, bios=BIOS):
    return Benchmark(forget=FORGET, retain=[], holdout=holdout, world=[], neighbours=[], bios=bios)


def test_mia_samples_are_prompt_and_answer():
    prompts, answers, owner = mia_samples(bench(), "forget")
    assert (prompts[0], answers[0], owner) == ("Question: F1?\nAnswer:", " a", [0, 1, 2])
    assert len(mia_samples(bench(), "holdout")[1]) == 4


def test_passage_samples_are_prefix_and_rest():
    prompts, answers = passage_samples(bench(), "forget", 2)
    assert (prompts, answers) == (["Fay Ames:", "Flo Birk:"], [" a, b, c.", " b, c, a."])
    assert passage_samples(bench(), "holdout", 1)[0] == ["Hal", "Ida", "Jo"]
    assert passage_samples(bench(), "forget", 5) == ([], [])  # no passage is longer than 5 words
    with pytest.raises(ValueError, match="prefix_words"):
        passage_samples(bench(), "forget", 0)


def test_record_score_is_the_mean_over_its_phrasings():
    two = qa("F1?", "a") | {"phrasings": ["F1?", "F1 again?"]}

    class ByPhrasing(TextFake):
        def log_probs(self, prompts, answers):
            return [torch.tensor([-1.0 if "again" in p else -3.0]) for p in prompts]

    b = Benchmark(forget=[two], retain=[], holdout=[qa("H1?", "d")], world=[], neighbours=[])
    results, _ = mia_suite(ByPhrasing(), b)
    # forget record: mean(-3, -1) = -2; holdout record: -3
    assert results["mia_loss_auc"].per_example == pytest.approx([-2.0, -3.0])
    assert results["mia_loss_auc"].value == pytest.approx(1.0)


def test_mia_suite_separates_members_and_marks_min_k_pp_unavailable():
    lm = TextFake()
    assert isinstance(lm, LanguageModel) and not isinstance(lm, SupportsTokenStats)
    results, unavailable = mia_suite(lm, bench())
    assert lm.calls == 2  # QA answers once, passages once
    assert lm.prompts[-5:] == ["Fay Ames:", "Flo Birk:", "Hal Berg:", "Ida Moss:", "Jo Lund:"]  # plain text
    assert set(results) == {"mia_loss_auc", "mia_zlib_auc", "mia_min_k_auc", "privleak_auc"}
    assert set(unavailable) == {"mia_min_k_pp_auc", "mia_reference_auc"}
    assert "token_stats" in unavailable["mia_min_k_pp_auc"]
    for key, m in results.items():
        assert m.name == key and m.higher_is_better is None
        assert m.value == pytest.approx(1.0)
    # QA attacks: 3 member records, then 4 non-member records; LOSS = mean log p = -0.2 and -2.0
    assert results["mia_loss_auc"].per_example == pytest.approx([-0.2] * 3 + [-2.0] * 4)
    # Min-K% on passages: 2 forget, then 3 holdout; k = 0.2 of 3 tokens: max(1, floor(0.6)) = 1, the lowest
    assert results["mia_min_k_auc"].per_example == pytest.approx([-0.3] * 2 + [-3.0] * 3)
    assert "passage" in results["mia_min_k_auc"].description


class Uniform(TextFake):
    """A reference that never saw any of the texts: log p = -1 for every token."""

    def log_probs(self, prompts, answers):
        return [torch.full((3,), -1.0) for _ in answers]


def test_mia_suite_with_token_stats_and_reference():
    results, unavailable = mia_suite(StatsFake(), bench(), reference=Uniform())
    assert unavailable == {}
    assert set(results) == set(MIA_KEYS)
    # z = lp + 1 on passages: the bottom 1 of 3 tokens: -0.3 + 1 = 0.7 for members, -3.0 + 1 = -2.0 for non-members
    assert results["mia_min_k_pp_auc"].per_example == pytest.approx([0.7] * 2 + [-2.0] * 3)
    assert results["mia_min_k_pp_auc"].value == pytest.approx(1.0)
    # NLL_ref - NLL_cand = mean log p_cand - mean log p_ref: -0.2 + 1 = 0.8 (members), -2.0 + 1 = -1.0
    assert results["mia_reference_auc"].per_example == pytest.approx([0.8] * 3 + [-1.0] * 4)
    assert results["mia_reference_auc"].value == pytest.approx(1.0)


def test_reference_attack_against_itself_has_no_signal():
    # reference = the candidate: every score NLL - NLL = 0 exactly, all tied: AUC 0.5
    results, _ = mia_suite(TextFake(), bench(), reference=TextFake())
    assert results["mia_reference_auc"].per_example == [0.0] * 7
    assert results["mia_reference_auc"].value == pytest.approx(0.5)


def test_mia_suite_reversed_membership_gives_auc_zero():
    class Reversed(TextFake):
        def log_probs(self, prompts, answers):
            return [-1 - lp for lp in super().log_probs(prompts, answers)]  # members now unlikely

    results, _ = mia_suite(Reversed(), bench())
    assert results["mia_loss_auc"].value == pytest.approx(0.0)
    assert results["privleak_auc"].value == pytest.approx(0.0)


def test_mia_suite_without_holdout_reports_every_key_unavailable():
    results, unavailable = mia_suite(TextFake(), bench(holdout=[], bios=[]))
    assert results == {} and set(unavailable) == set(MIA_KEYS)
    assert "holdout" in unavailable["mia_loss_auc"]
    assert unavailable["privleak_auc"].startswith("needs passages (biographies / raw texts) for both forget and holdout")


def test_min_k_and_privleak_are_unavailable_without_passages():
    # QA on both sides but no passages (TOFU-like): the QA attacks run, Min-K%, Min-K%++ and PrivLeak are n/a
    results, unavailable = mia_suite(StatsFake(), bench(bios=[bio("forget", "Fay Ames: a, b.")]))
    assert set(results) == {"mia_loss_auc", "mia_zlib_auc"}
    for key in ("mia_min_k_auc", "mia_min_k_pp_auc", "privleak_auc"):
        assert "needs passages" in unavailable[key] and "1 forget and 0 holdout" in unavailable[key]


def test_passage_attacks_run_without_holdout_qa():
    # MUSE-like: holdout raw text but no holdout QA: the passage attacks still run
    results, unavailable = mia_suite(TextFake(), bench(holdout=[]))
    assert set(results) == {"mia_min_k_auc", "privleak_auc"}
    assert "holdout split is empty" in unavailable["mia_loss_auc"]


class TenTokens(TextFake):
    """Passages of 10 tokens: LP for forget, LP - 1 for holdout."""

    def log_probs(self, prompts, answers):
        return [LP if "F" in p else LP - 1 for p in prompts]


def test_privleak_auc_is_min_k_at_point_four():
    results, _ = mia_suite(TenTokens(), bench(), k=1.0)
    # on 10 tokens: k = 0.4 averages the 4 lowest, -2.875; k = 1.0 all of them, the LOSS score -1.55
    assert results["privleak_auc"].per_example[0] == pytest.approx(-2.875)
    assert results["mia_min_k_auc"].per_example[0] == pytest.approx(-1.55)
    assert math.isclose(results["privleak_auc"].value, 1.0)


# --- the passage attacks on a real tiny model -------------------------------------------------

WORDS = ["Lisbon", "Oslo", "Kyoto", "potter", "baker", "1951", "1987", "Honora", "Quill", "Ember", "Nardo",
         "Vesper", "chess", "rowing", "Halden", "Mirel", "Tamsin", "Orrin", "Cadell", "Yara"]
NAMES = ["Alara Ashgrove", "Bram Ashwood", "Cato Ashmere", "Dara Elmwood", "Esme Oakley", "Finn Rowan",
         "Gus Thorne", "Hana Vale", "Ilse Wren", "Jory Marsh", "Kit Fallow", "Lena Brook"]


def passage_bench() -> Benchmark:
    """6 forget and 6 holdout people: 1-token QA answers, and 10-value biographies ("Name: v1, ..., v10.")."""
    rng = random.Random(0)
    values = {n: rng.sample(WORDS, 10) for n in NAMES}
    split = {n: "forget" if i < 6 else "holdout" for i, n in enumerate(NAMES)}
    records = {s: [qa(f"Where was {n} born?", values[n][0]) for n in NAMES if split[n] == s]
               for s in ("forget", "holdout")}
    bios = [bio(split[n], f"{n}: " + ", ".join(values[n]) + ".") for n in NAMES]
    return Benchmark(forget=records["forget"], retain=[], holdout=records["holdout"], world=[], neighbours=[],
                     bios=bios)


@pytest.fixture(scope="module")
def passage_lm():
    b = passage_bench()
    tok = train_tokenizer([x["text"] for x in b.bios] + [format_prompt(r["question"]) + format_answer(r["answer"])
                                                          for r in b.forget + b.holdout], 400)
    cfg = TinyModelConfig(vocab_size=400, hidden_size=32, intermediate_size=64, layers=1, heads=2)
    return HFLanguageModel(build_tiny_model(cfg, tok, seed=0), tok)


def test_min_k_at_two_ks_differs_on_passages(passage_lm):
    b = passage_bench()
    results, unavailable = mia_suite(passage_lm, b, k=0.2, privleak_k=0.4, prefix_words=2)
    assert "mia_min_k_pp_auc" in results and "mia_min_k_auc" not in unavailable
    # Scored on the QA answers (1-3 tokens) both ks pick the single least likely token, so the two
    # AUCs were equal (issue 17); on 20-odd passage tokens they average 4 vs 8 tokens.
    assert results["mia_min_k_auc"].per_example != pytest.approx(results["privleak_auc"].per_example)
    assert results["mia_min_k_auc"].value != results["privleak_auc"].value
    # each passage's score is Min-K% of its rest given its name, as plain text after bos
    prompts, answers = passage_samples(b, "forget", 2)
    lp = passage_lm.log_probs(prompts[:1], answers[:1])[0]
    assert len(lp) >= 20
    assert results["privleak_auc"].per_example[0] == pytest.approx(min_k_score(lp, 0.4))
