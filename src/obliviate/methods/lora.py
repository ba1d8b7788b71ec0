"""LoRA for every method of the shared loop, through peft (Hu et al. 2021, arXiv 2106.09685).

W' = W + (alpha / r) * B @ A, with A (r x in) and B (out x r) trained and W frozen; B starts at zero,
so the first step starts from the target itself.

    obliviate run --set methods=[npo_rt] --set lora.r=8                  # every method, merged
    obliviate run --set method_args.npo_rt.lora.r=8 --set method_args.npo_rt.lora.merge=false

Merged (the default), the result is a plain Hugging Face model. Kept, the saved directory holds the
unchanged base weights *and* the adapter (adapter_config.json, adapter_model.safetensors):
`AutoModelForCausalLM.from_pretrained(dir)` loads base plus adapter (transformers' peft
integration), and `PeftModel.from_pretrained(target_model, dir)` applies the adapter to the target.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from peft import LoraConfig, PeftModel, get_peft_model

from obliviate.config import LoraSettings
from obliviate.errors import ObliviateError
from obliviate.models.hf import HFLanguageModel


def check_rank(settings: LoraSettings, method: str) -> None:
    """Re-check the rank: config validation catches it, but a config changed after validation does not."""
    if settings.r < 1:
        raise ObliviateError(f"method '{method}': LoRA rank must be at least 1, got lora.r={settings.r}; "
                             f"e.g. --set method_args.{method}.lora.r=8, or lora=null for full-parameter training")


def attach(model, settings: LoraSettings, targets: list[str] | str) -> PeftModel:
    """Wrap `model` (changed in place) with fresh adapters on `targets`; only adapters train."""
    alpha = settings.alpha if settings.alpha is not None else 2.0 * settings.r
    config = LoraConfig(r=settings.r, lora_alpha=alpha, lora_dropout=settings.dropout, target_modules=targets,
                        task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5; not ours to fix
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def finish(peft_model: PeftModel, settings: LoraSettings, tokenizer, name: str) -> HFLanguageModel:
    """The trained model as a `LanguageModel`: merged into plain weights, or base plus adapter."""
    if settings.merge:
        merged = peft_model.merge_and_unload()
        # peft froze the base weights for training; a merged model is a plain model again, and
        # attacks that fine-tune it (relearning) need its weights trainable like any loaded model.
        merged.requires_grad_(True)
        return HFLanguageModel(merged, tokenizer, name=name)
    return AdapterLanguageModel(peft_model, tokenizer, name=name)


class AdapterLanguageModel(HFLanguageModel):
    """A peft model kept unmerged; `save` writes base weights and adapter into one directory."""

    def save(self, path: str | Path) -> None:
        base = self.model.get_base_model()
        # peft renames each adapted layer's weight `x.base_layer.weight` and adds lora_* tensors;
        # the plain model's own names are the base weights saved as an ordinary checkpoint.
        state = {k.replace(".base_layer", ""): v for k, v in base.state_dict().items() if "lora_" not in k}
        base.save_pretrained(path, state_dict=state)
        self.model.save_pretrained(path)  # adapter_config.json + adapter_model.safetensors
        self.tokenizer.save_pretrained(path)
