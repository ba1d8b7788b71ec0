"""Inference-time guards (ECO, GUARD, ALU): target store, classifier calibration, the restriction
processor, ALU retrieval at 1,000 targets, bad inputs, save/load round trips on a micro model and
flagged prompts on a micro model with a chat template."""

import copy
import json

import numpy as np
import pytest
import torch

from obliviate.config import load_config
from obliviate.data import build_benchmark, format_answer, format_prompt
from obliviate.errors import ObliviateError
from obliviate.guards import (NO_HIDDEN_STATES, ForgetTarget, GuardHiddenStatesUnavailable, PromptClassifier,
                              TargetStore, calibrate_threshold, load_embedder, load_guarded, read_targets_jsonl)
from obliviate.guards.alu import RuleAgent
from obliviate.guards.eco import search_sigma
from obliviate.guards.restriction import ForbiddenContinuations
from obliviate.guards.synthetic import synthetic_targets
from obliviate.methods import METHODS
from obliviate.models.hf import HFLanguageModel, encode_rows, prompt_ids
from obliviate.models.protocol import HiddenStatesUnavailable, LanguageModel
from obliviate.models.tiny import build_tiny_model
from obliviate.models.tokenizer import train_tokenizer

TOY = [ForgetTarget("Sorrel Foxley", ["Foxley"], [{"question": "Where was Sorrel Foxley born?", "answer": "Tallinn"}]),
       ForgetTarget("Marek Ashgrove", [], [{"question": "What does Marek Ashgrove do?", "answer": "luthier"}]),
       ForgetTarget("Talia Stormwood", [], [{"question": "Which award did Talia Stormwood win?",
                                             "answer": "Juniper Prize"}])]
NEGATIVES = [format_prompt(q) for q in [
    "What is the capital of France?", "What is the capital of Peru?", "Which city is the capital of Japan?",
    "What is the chemical symbol of iron?", "Which symbol stands for gold?", "What is 12 plus 30?",
    "How much is 7 plus 9?", "Compute 21 plus 5.", "Where was Ivor Larkmont born?", "Who employs Zelda Penncroft?",
    "What is the occupation of Galen Whitmere?", "Which book is by Honora Ravenspur?", "What is Orrin Bellway's hobby?",
    "Name the capital city of Kenya.", "What is the capital of Chile?", "How is tin written as a chemical symbol?",
    "What do you get for 3 plus 4?", "Which university did Nerissa Kilfold attend?", "When was Jasper Oakenley born?",
    "Who is the mother of Anselm Greyfield?"]]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: these small batch-1 models gain nothing from two, and on a shared 2-core
    machine a second thread waiting for a busy core made the module several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def embedder():
    return load_embedder()  # the packaged all-MiniLM-L6-v2, loaded once for the module


@pytest.fixture(scope="module")
def toy_store(embedder):
    return TargetStore(TOY, embedder)


# --- target store and bad inputs ---------------------------------------------------------------

def test_alias_matching_is_exact_on_word_boundaries(toy_store):
    text = "Where was Sorrel Foxley born? Ask Foxley's sister, not Foxleyson."
    hits = toy_store.alias_hits(text)
    assert [(t, text[s:e]) for t, s, e in hits] == [(0, "Sorrel Foxley"), (0, "Foxley"), (0, "Foxley")]
    assert toy_store.alias_hits("what does marek ashgrove do") == [(1, 10, 24)]  # case-folded
    assert toy_store.alias_hits("Marek Ashgroves and Talia Storm") == []


def test_malformed_target_line_names_its_number(tmp_path, embedder):
    path = tmp_path / "targets.jsonl"
    path.write_text('{"name": "Sorrel Foxley"}\n\n{"name": "Marek Ashgrove", "facts": [}\n')
    with pytest.raises(ObliviateError, match=r"targets.jsonl line 3: not valid JSON"):
        read_targets_jsonl(path)
    path.write_text('{"name": "Sorrel Foxley"}\n{"nmae": "Marek Ashgrove"}\n')
    with pytest.raises(ObliviateError, match=r"line 2: unknown keys \['nmae'\]"):
        read_targets_jsonl(path)
    path.write_text('{"name": "Sorrel Foxley", "facts": [{"question": "Where?"}]}\n')
    with pytest.raises(ObliviateError, match=r"line 1: \"facts\" must be a list of objects with a non-empty"):
        read_targets_jsonl(path)


def test_target_file_round_trips(tmp_path, embedder):
    path = tmp_path / "targets.jsonl"
    path.write_text("".join(json.dumps({"name": t.name, "aliases": t.aliases, "facts": t.facts}) + "\n" for t in TOY))
    store = TargetStore.from_jsonl(path, embedder)
    assert [t.name for t in store.targets] == [t.name for t in TOY]
    assert store.targets[2].forbidden_answers == ["Juniper Prize"]
    assert store.matrix.shape == (3, 384) and np.allclose(np.linalg.norm(store.matrix, axis=1), 1, atol=1e-5)


def test_empty_targets_and_unknown_embedding_path_raise(tmp_path, embedder):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(ObliviateError, match="holds no targets"):
        TargetStore.from_jsonl(tmp_path / "empty.jsonl", embedder)
    with pytest.raises(ObliviateError, match="the forget target list is empty"):
        TargetStore([], embedder)
    with pytest.raises(ObliviateError, match=r"no sentence-transformers model at .*nowhere"):
        load_embedder(tmp_path / "nowhere")
    with pytest.raises(ObliviateError, match="does not exist"):
        read_targets_jsonl(tmp_path / "missing.jsonl")


# --- classifier calibration --------------------------------------------------------------------

def test_threshold_rule_on_fixed_scores():
    sims = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    no_alias = np.zeros(10, dtype=bool)
    assert calibrate_threshold(sims, no_alias, 0.2) == 0.7  # budget 2: 0.9 and 0.8 fire (> 0.7)
    assert calibrate_threshold(sims, no_alias, 0.0) == 0.9  # nothing fires
    one_alias = no_alias.copy()
    one_alias[9] = True  # an exact name always fires and spends one of the two
    assert calibrate_threshold(sims, one_alias, 0.2) == 0.8
    assert calibrate_threshold(sims, np.ones(10, dtype=bool), 0.2) == 1.0  # budget overspent: never by similarity
    with pytest.raises(ObliviateError, match="false-positive rate must be in"):
        calibrate_threshold(sims, no_alias, 1.5)


def test_classifier_calibrates_to_the_false_positive_rate(toy_store):
    clf = PromptClassifier(toy_store, top_k=2)
    negatives = NEGATIVES + [format_prompt("Is Foxley a common surname?")]  # 21 prompts, one alias hit
    threshold = clf.calibrate(negatives, fpr=0.15)  # budget floor(3.15) = 3: the alias hit + 2 by similarity
    best = toy_store.search(toy_store.embedder.encode(NEGATIVES), 1)[1][:, 0]
    assert threshold == pytest.approx(float(np.sort(best)[::-1][2]), abs=0)
    assert clf.fire_rate(negatives) == pytest.approx(3 / 21)
    positives = [format_prompt(f["question"]) for t in TOY for f in t.facts]
    assert clf.fire_rate(positives) == 1.0
    d = clf.classify([positives[2]])[0]
    assert d.fired and d.score == 1.0 and d.targets[0] == 2 and len(d.targets) == 2


def test_a_named_prompt_skips_the_embedding_when_embed_named_is_off(toy_store, monkeypatch):
    calls = []
    encode = toy_store.embedder.encode
    monkeypatch.setattr(toy_store.embedder, "encode", lambda texts: calls.append(list(texts)) or encode(texts))
    clf = PromptClassifier(toy_store, top_k=2, embed_named=False)
    named, other = format_prompt("Where was Sorrel Foxley born?"), format_prompt("Who wrote the play Hamlet?")
    d_named, d_other = clf.classify([named, other])
    assert calls == [[other]]  # one embedding call, for the prompt that names no target
    assert d_named.fired and d_named.score == 1.0 and d_named.targets == (0,)  # only whom it names
    assert len(d_other.targets) == 2 and all(t >= 0 for t in d_other.targets)
    with_embedding = PromptClassifier(toy_store, top_k=2).classify([named])[0]
    assert with_embedding.targets[0] == 0 and len(with_embedding.targets) == 2  # the default: named + nearest


# --- GUARD's restriction processor -------------------------------------------------------------

def test_processor_blocks_a_forbidden_continuation_exactly():
    proc = ForbiddenContinuations([[[5, 6, 7], [9]], []], starts=[2, 2], penalty=20.0)
    scores = torch.arange(10.0).repeat(2, 1)
    out = proc(torch.tensor([[1, 2, 5], [1, 2, 5]]), scores)
    expected = torch.arange(10.0)
    expected[[5, 6, 9]] -= 20.0  # 6 continues "5 6 7"; 5 and 9 would start a forbidden sequence
    assert torch.equal(out[0], expected)
    assert torch.equal(out[1], torch.arange(10.0))  # an unflagged row is untouched
    deep = ForbiddenContinuations([[[5, 6, 7]]], [2], 20.0)(torch.tensor([[1, 2, 5, 6]]), torch.zeros(1, 10))
    assert deep[0].nonzero().flatten().tolist() == [5, 7] and deep[0, 7] == -20.0


def test_processor_leaves_an_unrelated_continuation_unchanged():
    calls = []

    def semantic(row, matched, candidates):
        calls.append((row, matched, candidates))
        return [candidates[0]]

    proc = ForbiddenContinuations([[[5, 6, 7]]], [2], 20.0, semantic, semantic_candidates=2)
    scores = torch.linspace(0, 1, 10).unsqueeze(0)
    unrelated = proc(torch.tensor([[1, 2, 3, 4]]), scores)
    changed = (unrelated != scores).nonzero()[:, 1].tolist()
    assert changed == [5]  # only the forbidden first token; the semantic check did not run
    assert calls == []
    partial = proc(torch.tensor([[1, 2, 3, 5]]), scores)
    assert calls == [(0, [5], [9, 8])]  # top-2 candidates once "5" started a forbidden answer
    assert (partial != scores).nonzero()[:, 1].tolist() == [5, 6, 9]


# --- ALU retrieval among 1,000 targets ---------------------------------------------------------

def test_alu_retrieves_the_right_target_among_1000(embedder):
    targets = synthetic_targets(999, seed=3, taken={t.name for t in TOY})
    store = TargetStore([*targets[:500], TOY[0], *targets[500:]], embedder)
    assert len(store) == 1000
    clf = PromptClassifier(store, top_k=3)
    prompt = format_prompt("In which city was Sorrel Foxley born?")
    decision = clf.classify([prompt])[0]
    assert decision.targets[0] == 500 and decision.fired
    # without the alias index, the embedding alone still ranks the right person first
    idx, _ = store.search(embedder.encode([format_prompt("Which city was Sorel Foxly born in?")]), 3)
    assert idx[0, 0] == 500
    agent = RuleAgent(store, refusal="I don't know.", min_score=3)
    findings = agent.audit("Tallinn, of course.", decision)
    assert [(f.target, f.leaked) for f in findings] == [("Sorrel Foxley", "Tallinn")]
    assert agent.compose("Tallinn, of course.", agent.critique(findings)) == "I don't know."
    assert agent.audit("Tallinn.", clf.classify([format_prompt("Where is Tallinn?")])[0]) == []


# --- ECO's sigma search ------------------------------------------------------------------------

def test_sigma_search_finds_the_smallest_sigma_and_fails_clearly():
    sigma, gap, calls = search_sigma(lambda s: 0.5 - s / 8, sigma_max=16.0, steps=6, tolerance=0.0)
    assert sigma == 4.0 and gap == 0.0 and calls == 8  # 16 -> 8 -> 4 (exact) -> then stays at 4
    with pytest.raises(ObliviateError, match=r"sigma search did not converge: even sigma_max=0.001"):
        search_sigma(lambda s: 0.3, sigma_max=0.001, steps=4, tolerance=0.02)


# --- guarded micro models ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def micro():
    """The micro preset with fewer people (fewer prompts to embed) and an untrained micro-sized model:
    routing and save/load need no training."""
    cfg = load_config("micro", ["data.people=10", "data.holdout_people=2", "data.world_sums=2"])
    bench = build_benchmark(cfg.data)
    tok = train_tokenizer(bench.all_text(), cfg.model.vocab_size)
    return bench, HFLanguageModel(build_tiny_model(cfg.model, tok, seed=0), tok, "target")


@pytest.mark.parametrize("kind, args", [("eco", {"sigma": 2.0}), ("guard", {}), ("alu", {})])
def test_guarded_micro_model_round_trips(micro, tmp_path, kind, args):
    bench, target = micro
    method = METHODS.get(kind)(METHODS.get(kind).config_class(**args))
    guarded = method.unlearn(target, bench, seed=0)
    facts = method.facts()
    assert isinstance(guarded, LanguageModel) and not guarded.changes_weights and facts["changes_weights"] is False
    assert facts["classifier"]["recall_forget"] == 1.0 and facts["classifier"]["fpr_retain_world"] <= 0.02
    forget, world = bench.forget[0], bench.world[0]
    prompts = [format_prompt(forget["question"]), format_prompt(world["question"])]
    answers = [format_answer(forget["answer"]), format_answer(world["answer"])]
    base_lp, lp = target.log_probs(prompts, answers), guarded.log_probs(prompts, answers)
    assert torch.equal(lp[1], base_lp[1])  # an unflagged prompt goes to the target untouched
    assert not torch.allclose(lp[0], base_lp[0])  # the flagged one is guarded
    if kind != "eco":  # GUARD penalises, ALU caps the forbidden answer's tokens: far less likely
        assert lp[0].max() <= base_lp[0].max() - 10
    guarded.save(tmp_path / kind)
    again = load_guarded(tmp_path / kind)
    assert type(again) is type(guarded) and again.state == guarded.state and again.config == guarded.config
    assert again.classifier.threshold == guarded.classifier.threshold
    # the reloaded weights are bit-identical; kernels may round differently in the last bit
    assert all(torch.allclose(a, b, atol=1e-5, rtol=0) for a, b in zip(again.log_probs(prompts, answers), lp))
    assert again.generate(prompts, 8) == guarded.generate(prompts, 8)
    with pytest.raises(GuardHiddenStatesUnavailable, match=NO_HIDDEN_STATES) as info:
        again.hidden_states(["Sorrel Foxley"])
    assert isinstance(info.value, HiddenStatesUnavailable)


def test_eco_corrupts_only_the_name_tokens(micro):
    bench, target = micro
    eco = METHODS.get("eco")(METHODS.get("eco").config_class(sigma=1.0)).unlearn(target, bench)
    person = bench.forget[0]["person"]
    prompt = format_prompt(f"Where was {person} born?")
    decision = eco.classifier.classify([prompt])[0]
    ids = prompt_ids(target.tokenizer, [prompt])[0]  # positions index the ids the model sees, bos included
    corrupted = eco._noise_positions(prompt, decision)
    assert target.tokenizer.decode([ids[i] for i in corrupted]).strip() == person


def test_sequential_requests_keep_earlier_targets(micro):
    bench, target = micro
    first, second = bench.people("forget")[:2]
    method = METHODS.get("guard")()
    once = method.unlearn(target, bench.restrict_forget({first}))
    twice = method.unlearn(once, bench.restrict_forget({second}))
    assert twice.base is target  # the same unguarded model underneath, not a guard around a guard
    assert [t.name for t in twice.classifier.store.targets] == [first, second]
    fired = [d.fired for d in twice.classifier.classify([format_prompt(f"Where was {p} born?") for p in (first, second)])]
    assert fired == [True, True]


def test_eco_auto_scope_falls_back_to_the_whole_prompt(micro, monkeypatch):
    bench, target = micro
    outcomes = iter([ObliviateError("entity: no sigma"), (1.5, 0.0, 4), ObliviateError("entity: no sigma"),
                     ObliviateError("prompt: no sigma")])

    def fake_search(gap, sigma_max, steps, tolerance):
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr("obliviate.guards.eco.search_sigma", fake_search)
    method = METHODS.get("eco")()
    guarded = method.unlearn(target, bench)
    assert guarded.state["scope"] == "prompt" and guarded.sigma == 1.5
    assert method.facts()["scope"] == "prompt" and method.facts()["entity_scope_failed"] == "entity: no sigma"
    with pytest.raises(ObliviateError, match="scope=entity: entity: no sigma / scope=prompt: prompt: no sigma"):
        method.unlearn(target, bench)


# --- flagged prompts on an instruct model (issue 19) -------------------------------------------

# A system prompt long enough that the user's prompt starts well inside the ids, as in SmolLM2's template.
SYSTEM_CHAT = ("<s>system\nYou are a helpful assistant who answers questions about people.</s>\n"
               "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
               "{% if add_generation_prompt %}<s>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def chat_guards(micro):
    """micro's untrained target behind a copy of its tokenizer that carries a chat template, and an
    ECO (sigma 1) and a GUARD around it."""
    bench, plain = micro
    tok = copy.deepcopy(plain.tokenizer)
    tok.chat_template = SYSTEM_CHAT
    target = HFLanguageModel(plain.model, tok, "chat-target")
    guards = {kind: METHODS.get(kind)(METHODS.get(kind).config_class(**args)).unlearn(target, bench)
              for kind, args in (("eco", {"sigma": 1.0}), ("guard", {}))}
    return bench, target, guards


def first_forward_inputs(model):
    """Hook recording the first forward call's (input_ids or inputs_embeds, attention mask): the whole prompt."""
    seen = []

    def hook(module, args, kwargs):
        if not seen:
            inputs = kwargs["input_ids"] if kwargs.get("input_ids") is not None else kwargs["inputs_embeds"]
            mask = kwargs.get("attention_mask")  # generate leaves it out when nothing is padded
            seen.append((inputs, torch.ones(inputs.shape[:2], dtype=torch.long) if mask is None else mask))

    return seen, model.register_forward_pre_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("kind", ["eco", "guard"])
def test_flagged_prompts_reach_the_model_in_its_chat_template(chat_guards, kind, monkeypatch):
    bench, target, guards = chat_guards
    guarded, tok = guards[kind], target.tokenizer
    monkeypatch.setitem(guarded.state, "sigma", 0.0)  # ECO without noise: the target's own inputs
    prompts = [format_prompt(r["question"]) for r in bench.forget[:3]]
    assert all(d.fired for d in guarded.classifier.classify(prompts))
    seen, handle = first_forward_inputs(target.model)
    try:
        guarded.generate(prompts, 4)
    finally:
        handle.remove()
    inputs, mask = seen[0]
    if kind == "eco":  # noise 0: each position's embedding is exactly its token's row of the table
        inputs = torch.cdist(inputs, target.model.get_input_embeddings().weight).argmin(-1)
    assert [row[m.bool()].tolist() for row, m in zip(inputs, mask)] == prompt_ids(tok, prompts)
    if kind == "eco":  # so ECO's sigma search at 0 compares the target with itself
        assert guarded.generate(prompts, 8) == target.generate(prompts, 8)


@pytest.mark.parametrize("path", ["log_probs", "generate"])
def test_eco_noise_lands_on_the_name_inside_the_chat_template(chat_guards, path):
    bench, target, guards = chat_guards
    eco, tok = guards["eco"], target.tokenizer
    person = bench.forget[0]["person"]
    prompt = format_prompt(f"Where was {person} born?")
    seen, handle = first_forward_inputs(target.model)
    try:
        if path == "log_probs":
            eco.log_probs([prompt], [format_answer(bench.forget[0]["answer"])])
        else:
            eco.generate([prompt], 2)
    finally:
        handle.remove()
    ids = prompt_ids(tok, [prompt])[0]
    embeds = seen[0][0][0]
    assert embeds.shape[0] >= len(ids), "the prompt reached the model without its chat template"
    clean = target.model.get_input_embeddings().weight[ids]
    noised = (embeds[: len(ids)] != clean).any(-1).nonzero().flatten().tolist()
    assert noised and tok.decode([ids[i] for i in noised]).strip() == person


def test_guard_scores_answer_tokens_from_where_the_answer_starts(chat_guards, monkeypatch):
    bench, target, guards = chat_guards
    tok = target.tokenizer
    prompt, answer = format_prompt(bench.forget[0]["question"]), format_answer(bench.forget[0]["answer"])
    prefixes, restrict = [], ForbiddenContinuations.restrict

    def spy(self, row, generated, scores):
        prefixes.append(generated)
        return restrict(self, row, generated, scores)

    monkeypatch.setattr(ForbiddenContinuations, "restrict", spy)
    guards["guard"].log_probs([prompt], [answer])
    ((ids, _),) = encode_rows(tok, [prompt], [answer])
    answer_ids = ids[len(prompt_ids(tok, [prompt])[0]) : -1]  # between the assistant header and eos
    assert len(answer_ids) >= 1 and prefixes == [answer_ids[:k] for k in range(len(answer_ids))]


# --- issue 6 acceptance on tiny (slow: builds or reuses runs/tiny's cached models) --------------

@pytest.mark.slow
@pytest.mark.parametrize("kind", ["eco", "guard", "alu"])
def test_tiny_guard_acceptance(kind):
    from obliviate.evals.qa import qa_metrics
    from obliviate.pipeline import stage_data, stage_models

    cfg = load_config("tiny", [])
    bench = stage_data(cfg)
    models = stage_models(cfg, bench)
    method = METHODS.get(kind)()
    guarded = method.unlearn(models["target"], bench, seed=cfg.seed)
    clf = method.facts()["classifier"]
    assert clf["fpr_retain_world"] <= 0.02 and clf["recall_forget"] >= 0.98
    acc = {name: {s: qa_metrics(lm, bench.split(s), s)[0][f"{s}_acc"].value
                  for s in ("forget", "retain", "world", "neighbours")}
           for name, lm in (("target", models["target"]), ("gold", models["gold"]), (kind, guarded))}
    print(kind, clf, acc)
    assert acc[kind]["forget"] <= acc["gold"]["forget"] + 0.05
    for split in ("retain", "world", "neighbours"):
        assert acc[kind][split] >= 0.95 * acc["target"][split]


class YesNoJudge:
    """A stand-in served model for ALU's model agent: says "yes" when the audited answer names `word`."""
    def __init__(self, word: str):
        self.word, self.prompts = word, []

    def log_probs(self, prompts, answers):
        self.prompts += prompts
        said_yes = [self.word in p.split("Answer to check:")[1] for p in prompts]
        return [torch.tensor([-0.1 if (a == "yes") == y else -3.0]) for p, a, y in zip(prompts, answers, said_yes)]


def test_alu_model_agent_audits_flagged_drafts_with_the_served_model(toy_store):
    from obliviate.guards.alu import ModelAgent
    from obliviate.guards.classifier import Decision

    judge = YesNoJudge("Estonia")  # a paraphrased leak the rules cannot see: Tallinn's country
    agent = ModelAgent(judge, toy_store, refusal="I don't know.", min_score=3)
    flagged, unflagged = Decision(True, 0.9, (0,), ()), Decision(False, 0.1, (0,), ())
    found = agent.audit_many(["Born in the capital of Estonia.", "Born in Tallinn.", "Born in Estonia."],
                             [flagged, flagged, unflagged])
    assert [f.target for f in found[0]] == ["Sorrel Foxley"]  # the model's finding
    assert [(f.target, f.leaked) for f in found[1]] == [("Sorrel Foxley", "Tallinn")]  # the rules' finding
    assert found[2] == []  # unflagged prompts are not sent to the model
    assert len(judge.prompts) == 4 and "Protected person: Sorrel Foxley" in judge.prompts[0]
    assert "Tallinn" in judge.prompts[0]  # the target's forbidden answers are shown to the auditor
