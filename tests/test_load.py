import json

import numpy as np
import pytest
import torch

from obliviate.data import format_answer, format_prompt
from obliviate.errors import ObliviateError
from obliviate.models.hf import IGNORE, HFLanguageModel, encode_rows, prompt_ids
from obliviate.models.load import check_gguf, load_language_model
from obliviate.models.settings import TinyModelConfig
from obliviate.models.tiny import build_tiny_model
from obliviate.models.tokenizer import train_tokenizer

TEXTS = [format_prompt(f"Where was Alara Ash{t} born?") + format_answer(c)
         for t in ("grove", "wood") for c in ("Lisbon", "Oslo")] * 5
CHAT = ("{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
        "{% if add_generation_prompt %}<s>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    tok = train_tokenizer(TEXTS, 320)
    cfg = TinyModelConfig(vocab_size=320, hidden_size=16, intermediate_size=32, layers=1, heads=2)
    out = tmp_path_factory.mktemp("tiny")
    HFLanguageModel(build_tiny_model(cfg, tok, seed=0), tok).save(out)
    return out


def test_local_hf_directory_loads_and_scores(tiny_dir):
    lm = load_language_model(tiny_dir, name="mine")
    assert lm.name == "mine" and lm.model.dtype == torch.float32
    (lp,) = lm.log_probs([format_prompt("Where was Alara Ashgrove born?")], [" Lisbon"])
    assert lp.shape == (len(lm.tokenizer.encode(" Lisbon", add_special_tokens=False)),) and (lp < 0).all()


def test_missing_path_names_it(tmp_path):
    with pytest.raises(ObliviateError, match=r"nowhere.*not found.*smollm2-135m-instruct"):
        load_language_model(tmp_path / "nowhere")


def test_directory_without_config(tmp_path):
    with pytest.raises(ObliviateError, match="no config.json"):
        load_language_model(tmp_path)


def test_directory_that_is_not_a_causal_lm(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "distilbert", "dim": 8}))
    with pytest.raises(ObliviateError, match=r"not a causal language model.*'distilbert'"):
        load_language_model(tmp_path)


def test_directory_without_weights(tmp_path, tiny_dir):
    (tmp_path / "config.json").write_text((tiny_dir / "config.json").read_text())
    with pytest.raises(ObliviateError, match=r"no weights could be loaded from .*model.safetensors"):
        load_language_model(tmp_path)


def test_non_gguf_file_and_bad_dtype(tmp_path, tiny_dir):
    (tmp_path / "weights.bin").write_bytes(b"\0" * 8)
    with pytest.raises(ObliviateError, match=r"weights.bin.*not a .gguf"):
        load_language_model(tmp_path / "weights.bin")
    with pytest.raises(ObliviateError, match="dtype 'int8'"):
        load_language_model(tiny_dir, dtype="int8")


def _write_gguf(path, raw_type):
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    block, size = gguf.GGML_QUANT_SIZES[raw_type]
    # Raw quantized bytes for a (2, block) tensor: shape given in bytes, as gguf's writer expects.
    w.add_tensor("token_embd.weight", np.zeros((2, size), dtype=np.uint8), raw_dtype=raw_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_unsupported_gguf_quantization_names_file_and_type(tmp_path):
    import gguf

    path = tmp_path / "odd.Q8_1.gguf"
    _write_gguf(path, gguf.GGMLQuantizationType.Q8_1)
    with pytest.raises(ObliviateError, match=r"odd.Q8_1.gguf: unsupported GGUF quantization Q8_1.*Re-export"):
        load_language_model(path)
    ok = tmp_path / "fine.gguf"
    _write_gguf(ok, gguf.GGMLQuantizationType.Q4_1)
    check_gguf(ok)  # a supported type passes the check


def test_corrupt_gguf(tmp_path):
    (tmp_path / "broken.gguf").write_bytes(b"not a gguf at all")
    with pytest.raises(ObliviateError, match="broken.gguf is not a readable GGUF"):
        load_language_model(tmp_path / "broken.gguf")


def test_chat_template_wraps_prompts_and_masks_them():
    tok = train_tokenizer(TEXTS, 320)
    plain = encode_rows(tok, ["Question: x?\nAnswer:"], [" Oslo"])[0]
    tok.chat_template = CHAT
    ids, labels = encode_rows(tok, ["Question: x?\nAnswer:"], [" Oslo"])[0]
    header = tok("<s>user\nQuestion: x?\nAnswer:</s>\n<s>assistant\n", add_special_tokens=False)["input_ids"]
    answer = tok("Oslo", add_special_tokens=False)["input_ids"]  # leading space dropped after the header
    assert ids == header + answer + [tok.eos_token_id]
    assert labels == [IGNORE] * len(header) + answer + [tok.eos_token_id]
    assert prompt_ids(tok, ["", "Q"])[0] == [tok.bos_token_id]  # raw text: no chat wrapper
    assert plain[0][0] == tok.bos_token_id and plain[0] != ids


@pytest.mark.slow
def test_smollm2_knows_the_capital_of_france(tmp_path):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    lm = load_language_model("smollm2-135m-instruct")
    assert lm.name == "smollm2-135m-instruct" and lm.model.dtype == torch.float32
    (answer,) = lm.generate([format_prompt("What is the capital of France?")])
    assert "Paris" in answer
    options = [" Paris", " Berlin", " Madrid", " Rome"]
    scores = [lp.sum().item() for lp in lm.log_probs([format_prompt("What is the capital of France?")] * 4, options)]
    assert max(range(4), key=scores.__getitem__) == 0
    lm.save(tmp_path / "copy")  # dequantized: reloads as a plain HF directory, chat template kept
    again = load_language_model(tmp_path / "copy")
    assert again.generate([format_prompt("What is the capital of France?")]) == [answer]
