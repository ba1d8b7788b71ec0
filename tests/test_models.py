import pytest
import torch

from obliviate.data import format_answer, format_prompt
from obliviate.models.hf import IGNORE, HFLanguageModel, encode_pairs, token_log_probs
from obliviate.models.settings import TinyModelConfig
from obliviate.models.tiny import build_tiny_model
from obliviate.models.tokenizer import train_tokenizer

TEXTS = [format_prompt(f"Where was Alara Ash{t} born?") + format_answer(c)
         for t in ("grove", "wood", "mere") for c in ("Lisbon", "Oslo", "Kyoto")] * 5


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, 400)


@pytest.fixture(scope="module")
def lm(tok):
    cfg = TinyModelConfig(vocab_size=400, hidden_size=32, intermediate_size=64, layers=1, heads=2)
    return HFLanguageModel(build_tiny_model(cfg, tok, seed=0), tok)


@pytest.mark.parametrize("text", ["Where was Alara Ashgrove born?", " Lisbon", "Zürich 1987 ünïcode!"])
def test_tokenizer_round_trip(tok, text):
    # Byte-level BPE with a prefix space: a text is recovered exactly, a leading space added if absent.
    spaced = text if text.startswith(" ") else " " + text
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == spaced
    assert tok.decode(tok.encode(spaced, add_special_tokens=False)) == spaced


def test_frequent_words_become_single_tokens(tok):
    assert len(tok.encode(" Lisbon", add_special_tokens=False)) == 1


def test_labels_cover_answer_and_eos_only(tok):
    ids, mask, labels = encode_pairs(tok, ["Question: x?\nAnswer:"], [" Oslo"])
    answer = tok.encode(" Oslo", add_special_tokens=False)
    assert labels[0][labels[0] != IGNORE].tolist() == answer + [tok.eos_token_id]
    assert mask.sum() == ids.shape[1]


def test_token_log_probs_match_full_softmax(lm, tok):
    ids, mask, labels = encode_pairs(tok, ["Question: a?\nAnswer:", "Q"], [" Lisbon", " Kyoto Oslo"])
    lp, valid = token_log_probs(lm.model, ids, mask, labels)
    logits = lm.model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    full = torch.log_softmax(logits, -1).gather(-1, labels[:, 1:].clamp(min=0).unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(lp, full * valid, atol=1e-5)


def test_log_probs_exclude_eos_and_batching_is_invariant(lm):
    prompts, answers = [format_prompt("q?")] * 3, [" Lisbon", " Oslo Kyoto", " Kyoto"]
    whole = lm.log_probs(prompts, answers)
    lm.batch_size = 1
    single = lm.log_probs(prompts, answers)
    lm.batch_size = 64
    assert [len(x) for x in whole] == [len(lm.tokenizer.encode(a, add_special_tokens=False)) for a in answers]
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(whole, single))


def test_generate_left_padding_is_invariant_and_save_load(lm, tmp_path):
    prompts = [format_prompt("Where was Alara Ashgrove born?"), format_prompt("x")]
    batched = lm.generate(prompts, 5)
    assert batched == [lm.generate([p], 5)[0] for p in prompts]
    lm.save(tmp_path / "m")
    again = HFLanguageModel.load(tmp_path / "m")
    assert again.generate(prompts, 5) == batched
    hs = again.hidden_states(["Lisbon Oslo"])[0]
    assert hs.shape[0] == 2 and hs.shape[2] == 32


def test_load_missing_model_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        HFLanguageModel.load(tmp_path)


def test_answer_nll_weighs_long_completions_by_length(monkeypatch):
    import obliviate.models.train as train

    # two examples: 2 labelled tokens (log p -1, -3) and 20 labelled tokens (log p -0.5 each)
    lp = torch.zeros(2, 20)
    lp[0, :2] = torch.tensor([-1.0, -3.0])
    lp[1] = -0.5
    valid = torch.zeros(2, 20)
    valid[0, :2], valid[1] = 1, 1
    monkeypatch.setattr(train, "token_log_probs", lambda model, *batch: (lp, valid))
    model = torch.nn.Linear(1, 1)  # only its .device is read
    model.device = torch.device("cpu")
    # weights max(1, n / 10): 1 and 2; example means 2.0 and 0.5 -> (1 * 2.0 + 2 * 0.5) / 3 = 1.0
    assert train.answer_nll(model, (torch.zeros(1),), tokens_per_example=10).item() == pytest.approx(1.0)
    # tokens_per_example >= every length: the plain per-example mean (2.0 + 0.5) / 2
    assert train.answer_nll(model, (torch.zeros(1),), tokens_per_example=100).item() == pytest.approx(1.25)


def test_anchors_start_at_zero_and_hold_the_anchored_distributions(lm, tok):
    import copy

    from obliviate.models.settings import TrainConfig
    from obliviate.models.train import Anchors, train_causal_lm

    learn = [(format_prompt("Where was Alara Ashgrove born?"), format_answer("Kyoto"))] * 8
    keep = [(format_prompt(f"Where was Alara Ash{t} born?"), format_answer(c))
            for t, c in (("wood", "Oslo"), ("mere", "Lisbon"))]
    cfg = TrainConfig(epochs=6, lr=1e-2, batch_size=4, warmup=0.0)
    drift = {}
    for weight in (None, 5.0):
        model = copy.deepcopy(lm.model)
        probe = Anchors(model, tok, keep, weight=1.0, per_step=2)  # the untouched model's distributions
        assert probe.loss(model, [0, 1]).item() == pytest.approx(0.0, abs=1e-6)
        anchors = None if weight is None else Anchors(model, tok, keep, weight=weight, per_step=2)
        train_causal_lm(model, tok, learn, cfg, seed=0, anchors=anchors)
        with torch.no_grad():
            drift[weight] = probe.loss(model, [0, 1]).item()
    assert drift[None] > 0.05  # the plain fine-tuning moved the kept answers' distributions...
    assert drift[5.0] < 0.3 * drift[None]  # ...the anchored one far less
