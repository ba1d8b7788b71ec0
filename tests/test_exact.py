"""Exact unlearning (SISA, S3T) on a micro model: deletion is provably exact (`torch.equal` against
training from scratch without the item), the lineage drives it, bad input changes nothing, and the
ensemble serves as one `LanguageModel`. Deterministic CPU settings, one thread, fixed seeds."""

import json
import shutil

import pytest
import torch

from obliviate.config import load_config
from obliviate.data import build_benchmark
from obliviate.errors import ObliviateError
from obliviate.methods.exact import (EnsembleLanguageModel, ExactConfig, S3TConfig, S3TStore, SISAStore, item_id,
                                     load_exact)
from obliviate.methods.exact.s3t import block_name, rotations
from obliviate.methods.exact.sisa import checkpoint_name
from obliviate.methods.exact.store import sub_seed, train_on
from obliviate.models.hf import HFLanguageModel
from obliviate.models.protocol import HiddenStatesUnavailable, LanguageModel
from obliviate.models.tiny import build_tiny_model
from obliviate.models.tokenizer import train_tokenizer

SISA_CFG = ExactConfig(shards=2, slices=3, epochs=1, base_epochs=1)
S3T_CFG = S3TConfig(shards=2, slices=3, sequences=2, epochs=1, base_epochs=1, lora_r=2)


@pytest.fixture(scope="module", autouse=True)
def deterministic():
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(det)


@pytest.fixture(scope="module")
def setup():
    cfg = load_config("micro", ["data.people=12", "data.holdout_people=4", "data.world_sums=4"])
    bench = build_benchmark(cfg.data)
    tok = train_tokenizer(bench.all_text(), cfg.model.vocab_size)
    return bench, tok, build_tiny_model(cfg.model, tok, 0).config


@pytest.fixture(scope="module")
def sisa_store(setup, tmp_path_factory):
    bench, tok, arch = setup
    return SISAStore.create(tmp_path_factory.mktemp("sisa"), tok, arch, bench, SISA_CFG, seed=0)


@pytest.fixture(scope="module")
def s3t_store(setup, tmp_path_factory):
    bench, tok, arch = setup
    return S3TStore.create(tmp_path_factory.mktemp("s3t"), tok, arch, bench, S3T_CFG, seed=0)


def fresh(store, tmp_path):
    """An independent copy of a module-scoped store, so a test's deletions stay its own."""
    return store.copy(tmp_path / "copy")


def item_in(store, shard: int, slc: int) -> str:
    return next(i for i, r in sorted(store.record.items.items()) if (r["shard"], r["slice"]) == (shard, slc)
                and not r["deleted"])


def params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_equal_params(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    unequal = [k for k in a if not torch.equal(a[k], b[k])]
    assert not unequal, f"{len(unequal)} tensors differ, e.g. {unequal[0]}"


# --- SISA ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("slc", [0, 1])
def test_sisa_deletion_equals_training_the_shard_from_scratch_without_the_item(sisa_store, setup, tmp_path, slc):
    store = fresh(sisa_store, tmp_path)
    before = [params(m) for m in store.constituents()]
    x = item_in(store, 1, slc)
    report = store.delete([x])
    assert report["retrained"] == {"1": f"slices {slc}..2"}
    # From scratch: the public base, then slices 0..2 of shard 1 on its data without x, same seeds.
    bench, tok, _ = setup
    model = store.base_model()
    for k in range(SISA_CFG.slices):
        ids = [i for i, r in sorted(store.record.items.items(), key=lambda t: (t[1]["slice"], t[0]))
               if r["shard"] == 1 and r["slice"] <= k and i != x]
        world = bench.training_examples(("world",)) if k == SISA_CFG.slices - 1 else []  # replay="last"
        train_on(model, tok, store.record.examples(ids) + world, SISA_CFG, SISA_CFG.epochs, sub_seed(0, "sisa", 1, k),
                 "ref")
    after = [params(m) for m in store.constituents()]
    assert_equal_params(after[1], params(model))
    assert_equal_params(after[0], before[0])  # the other shard is untouched
    assert not torch.equal(after[1]["model.embed_tokens.weight"], before[1]["model.embed_tokens.weight"])


def test_sisa_steps_cover_only_the_retrained_slices(sisa_store, tmp_path):
    store = fresh(sisa_store, tmp_path)
    x = item_in(store, 0, 2)
    live = len(store.record.live(0, range(3))) - 1 + len(store.record.state["public"])  # the last slice replays world
    assert store.delete([x])["steps"] == -(-live // SISA_CFG.batch_size) * SISA_CFG.epochs


def test_lineage_erases_deleted_text_and_records_checksums(sisa_store, tmp_path):
    store = fresh(sisa_store, tmp_path)
    x = next(i for i, r in store.record.items.items() if r["prompt"] == "")  # a biography: its text is unique
    text = store.record.items[x]["completion"]
    store.delete([x])
    saved = json.loads((store.path / "lineage.json").read_text())
    assert saved["items"][x]["deleted"] and saved["items"][x]["completion"] is None
    assert text not in (store.path / "lineage.json").read_text()
    assert set(saved["checkpoints"]) == {"base/model.safetensors"} | {checkpoint_name(s, k) for s in range(2)
                                                                       for k in range(3)}


def test_deleting_an_item_never_trained_on_says_so_and_changes_nothing(sisa_store, setup, tmp_path):
    bench, _, _ = setup
    store = fresh(sisa_store, tmp_path)
    before = (store.path / "lineage.json").read_text()
    world = bench.training_examples(("world",))[0]
    for bad in (["not-an-item"], [item_id(*world)], []):
        with pytest.raises(ObliviateError, match="never trained|empty"):
            store.delete(bad)
    x = item_in(store, 0, 0)
    store.delete([x])
    with pytest.raises(ObliviateError, match="already deleted"):
        store.delete([x])
    with pytest.raises(ObliviateError, match="never trained"):
        store.items_of_people({"Nobody Atall"})
    assert json.loads(before)["items"][x]["deleted"] is None


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_bad_checkpoint_is_reported_not_retrained_from(sisa_store, tmp_path, damage):
    store = fresh(sisa_store, tmp_path)
    path = store.path / checkpoint_name(0, 0)
    if damage == "corrupt":
        raw = bytearray(path.read_bytes())
        raw[-5] ^= 0xFF
        path.write_bytes(bytes(raw))
    else:
        path.unlink()
    x = item_in(store, 0, 1)
    with pytest.raises(ObliviateError, match="corrupted" if damage == "corrupt" else "missing"):
        store.delete([x])
    assert store.record.items[x]["deleted"] is None and store.record.items[x]["completion"]


# --- S3T -----------------------------------------------------------------------------------------

def test_rotations_spread_each_slice_over_positions():
    assert rotations(4, 2) == [[0, 1, 2, 3], [2, 3, 0, 1]]
    assert rotations(3, 3) == [[0, 1, 2], [1, 2, 0], [2, 0, 1]]
    with pytest.raises(ObliviateError, match="at most"):
        rotations(2, 3)


def lora_params(model, blocks: int) -> dict[str, torch.Tensor]:
    names = {f".b{j}." for j in range(blocks)}
    return {k: v.detach().clone() for k, v in model.named_parameters() if "lora_" in k and any(n in k for n in names)}


def test_s3t_deletion_deactivates_blocks_and_the_active_model_equals_training_the_survivors(s3t_store, setup, tmp_path):
    bench, tok, _ = setup
    store = fresh(s3t_store, tmp_path)
    x = item_in(store, 0, 1)
    report = store.delete([x])
    assert report["steps"] == 0  # no training: blocks are deactivated
    orders = store.orders  # [[0, 1, 2], [2, 0, 1]]: slice 1 at position 1 and 2
    assert store.active["0/0"] == 1 and store.active["0/1"] == 2 and store.active["1/0"] == 3
    assert store.served(0) == (1, 2)
    for seq, order in enumerate(orders):  # no active block's lineage includes x, and none of its files survive
        for j in range(store.active[f"0/{seq}"]):
            assert store.record.items[x]["slice"] not in order[: j + 1]
        for j in range(store.active[f"0/{seq}"], 3):
            assert not (store.path / block_name(0, seq, j)).exists()
    # From scratch: surviving blocks of the served sequence trained in order on their slices' data.
    seq, blocks = store.served(0)
    model = store.base_model()
    for j in range(blocks):
        model = store._add_block(model, 0, seq, j)
        model.base_model.set_adapter([f"b{i}" for i in range(j + 1)])
        for n, p in model.named_parameters():
            p.requires_grad = f".b{j}." in n
        ids = [i for i, r in store.record.items.items() if r["shard"] == 0 and r["slice"] in orders[seq][: j + 1]
               and not r["deleted"]]
        ids.sort(key=lambda i: (store.record.items[i]["slice"], i))
        world = bench.training_examples(("world",))  # replay="every"
        train_on(model, tok, store.record.examples(ids) + world, S3T_CFG, S3T_CFG.epochs,
                 sub_seed(0, "s3t", 0, seq, j), "ref")
    assert_equal_params(lora_params(store.stack(0, seq, blocks), blocks), lora_params(model, blocks))
    served = store.constituents()[0]
    merged = model.merge_and_unload(adapter_names=[f"b{j}" for j in range(blocks)])
    assert_equal_params(params(served), params(merged))


def test_s3t_drain_retrains_the_queue_exactly(s3t_store, tmp_path):
    store = fresh(s3t_store, tmp_path)
    x = item_in(store, 1, 2)
    store.delete([x])
    assert store.queue == [[1, 0], [1, 1]]
    report = store.drain()
    assert store.queue == [] and report["steps"] > 0 and store.active["1/0"] == store.active["1/1"] == 3
    # The drained sequence equals one retrained from its surviving prefix by a second copy.
    other = fresh(s3t_store, tmp_path / "b")
    other.delete([x])
    other.train_sequence(1, 0, other.active["1/0"])
    assert_equal_params(lora_params(store.stack(1, 0, 3), 3), lora_params(other.stack(1, 0, 3), 3))


def test_s3t_bad_block_checkpoint_is_reported(s3t_store, tmp_path):
    store = fresh(s3t_store, tmp_path)
    path = store.path / block_name(0, 0, 0)
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    with pytest.raises(ObliviateError, match="corrupted"):
        store.constituents()


# --- the ensemble as a LanguageModel --------------------------------------------------------------

def test_ensemble_of_one_equals_the_plain_model(sisa_store):
    model = sisa_store.constituents()[0]
    plain, ens = HFLanguageModel(model, sisa_store.tokenizer), EnsembleLanguageModel([model], sisa_store.tokenizer)
    prompts = ["Question: What is the capital of France?\nAnswer:", "Question: What is 2 plus 2?\nAnswer:"]
    answers = [" Paris", " 4"]
    for a, b in zip(plain.log_probs(prompts, answers), ens.log_probs(prompts, answers)):
        assert torch.allclose(a, b, atol=1e-5)
    for a, b in zip(plain.token_stats(prompts, answers), ens.token_stats(prompts, answers)):
        assert all(torch.allclose(u, v, atol=1e-5) for u, v in zip(a, b))
    assert plain.generate(prompts, 8) == ens.generate(prompts, 8)


def test_ensemble_scores_the_mixture_of_its_constituents(sisa_store):
    lm = sisa_store.language_model()
    assert isinstance(lm, LanguageModel) and len(lm.models) == 2 and lm.aggregation == "posterior"
    prompt, answer = "Question: What is the capital of Peru?\nAnswer:", " Lima"
    plain = [HFLanguageModel(m, lm.tokenizer) for m in lm.models]
    # posterior: Bayesian model averaging, so the answer gets sum_k p_k(prompt, answer) / sum_k p_k(prompt)
    p_prompt = torch.stack([m.log_probs([""], [prompt])[0].sum() for m in plain])
    p_answer = torch.stack([m.log_probs([prompt], [answer])[0].sum() for m in plain])
    expected = torch.logsumexp(p_prompt + p_answer, 0) - torch.logsumexp(p_prompt, 0)
    assert torch.allclose(lm.log_probs([prompt], [answer])[0].sum(), expected, atol=1e-4)
    lm.aggregation = "uniform"  # every token: log of the plain mean of the probabilities
    each = [m.log_probs([prompt], [answer])[0] for m in plain]
    assert torch.allclose(lm.log_probs([prompt], [answer])[0], torch.log((each[0].exp() + each[1].exp()) / 2),
                          atol=1e-5)
    with pytest.raises(HiddenStatesUnavailable):
        lm.hidden_states(["x"])
    with pytest.raises(ObliviateError, match="aggregation"):
        EnsembleLanguageModel(lm.models, lm.tokenizer, aggregation="vote")


def test_save_and_load_round_trip(s3t_store, tmp_path):
    lm = s3t_store.language_model("s3t")
    lm.save(tmp_path / "saved")
    again = load_exact(tmp_path / "saved")
    prompts, answers = ["Question: What is the capital of Peru?\nAnswer:"], [" Lima"]
    assert torch.equal(lm.log_probs(prompts, answers)[0], again.log_probs(prompts, answers)[0])
    shutil.rmtree(tmp_path / "saved" / "base")
    with pytest.raises(ObliviateError, match="no exact-unlearning store"):
        load_exact(tmp_path / "saved")


def test_sequential_requests_delete_from_a_copy_of_the_previous_store(sisa_store, setup):
    from obliviate.methods.exact.sisa import SISA

    bench, _, _ = setup
    first, second = bench.people("forget")[:2]
    lm = sisa_store.language_model("sisa")
    method = SISA(SISA_CFG)
    after_one = method.unlearn(lm, bench.restrict_forget({first}))
    assert method.facts()["items_deleted"] == 31 and "train" not in method.facts()
    after_two = method.unlearn(after_one, bench.restrict_forget({second}))
    deleted = lambda lm: {r["person"] for r in lm.store.record.items.values() if r["deleted"]}  # noqa: E731
    assert deleted(lm) == set() and deleted(after_one) == {first} and deleted(after_two) == {first, second}
    assert after_two.store.path != after_one.store.path != sisa_store.path
