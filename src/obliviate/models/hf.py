"""`LanguageModel` over a Hugging Face causal LM and its tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

# Tiny models load and save in milliseconds; per-file progress bars would only be noise.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
hf_logging.disable_progress_bar()

IGNORE = -100


def encode_rows(tokenizer: PreTrainedTokenizerBase, prompts: list[str], answers: list[str]
                ) -> list[tuple[list[int], list[int]]]:
    """(ids, labels) per pair for bos+prompt+answer+eos, prompt positions masked in the labels.

    Prompt and answer are tokenized separately so the answer's tokens do not depend on the prompt.
    """
    rows = []
    for p, a in zip(prompts, answers, strict=True):
        p_ids = [tokenizer.bos_token_id] + tokenizer.encode(p, add_special_tokens=False)
        a_ids = tokenizer.encode(a, add_special_tokens=False) + [tokenizer.eos_token_id]
        rows.append((p_ids + a_ids, [IGNORE] * len(p_ids) + a_ids))
    return rows


def pad_rows(rows: list[tuple[list[int], list[int]]], pad_id: int
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, attention mask and labels."""
    width = max(len(r) for r, _ in rows)
    ids = torch.full((len(rows), width), pad_id)
    lab = torch.full((len(rows), width), IGNORE)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, l) in enumerate(rows):
        ids[i, : len(r)], lab[i, : len(l)], mask[i, : len(r)] = torch.tensor(r), torch.tensor(l), 1
    return ids, mask, lab


def encode_pairs(tokenizer: PreTrainedTokenizerBase, prompts: list[str], answers: list[str]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return pad_rows(encode_rows(tokenizer, prompts, answers), tokenizer.pad_token_id)


def token_log_probs(model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p of each next label token, 0/1 mask of labelled positions), both (batch, width - 1).

    The vocabulary projection runs only at labelled positions: answers are a few tokens of each
    sequence, so this skips most of the output layer's work in training and scoring.
    """
    target = labels[:, 1:]
    valid = target != IGNORE
    hidden = model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    logits = model.get_output_embeddings()(hidden[valid]).float()
    picked = torch.log_softmax(logits, -1).gather(-1, target[valid].unsqueeze(-1)).squeeze(-1)
    lp = torch.zeros(valid.shape, dtype=picked.dtype, device=picked.device).masked_scatter(valid, picked)
    return lp, valid.float()


class HFLanguageModel:
    """A causal LM from transformers behind the `LanguageModel` interface."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, name: str = "model",
                 batch_size: int = 64):
        self.model, self.tokenizer, self.name, self.batch_size = model.eval(), tokenizer, name, batch_size

    @classmethod
    def load(cls, path: str | Path, name: str | None = None) -> "HFLanguageModel":
        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no Hugging Face model at {path} (config.json missing); "
                                    "train one with `obliviate train`")
        return cls(AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path),
                   name or path.name)

    def save(self, path: str | Path) -> None:
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    def _batches(self, n: int):
        return (slice(i, i + self.batch_size) for i in range(0, n, self.batch_size))

    @torch.no_grad()
    def log_probs(self, prompts: list[str], answers: list[str]) -> list[torch.Tensor]:
        out = []
        for s in self._batches(len(prompts)):
            # Score the answer tokens only: drop the eos label appended for training.
            ids, mask, labels = encode_pairs(self.tokenizer, prompts[s], answers[s])
            labels[labels == self.tokenizer.eos_token_id] = IGNORE
            lp, valid = token_log_probs(self.model, ids, mask, labels)
            out += [row[v.bool()] for row, v in zip(lp, valid)]
        return out

    @torch.no_grad()
    def generate(self, prompts: list[str], max_new_tokens: int = 24) -> list[str]:
        tok, out = self.tokenizer, []
        for s in self._batches(len(prompts)):
            rows = [[tok.bos_token_id] + tok.encode(p, add_special_tokens=False) for p in prompts[s]]
            width = max(map(len, rows))
            ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows])
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
            gen = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                      do_sample=False, eos_token_id=tok.eos_token_id,
                                      pad_token_id=tok.pad_token_id)
            out += [tok.decode(g[width:], skip_special_tokens=True).split("\n")[0].strip() for g in gen]
        return out

    @torch.no_grad()
    def hidden_states(self, texts: list[str]) -> list[torch.Tensor]:
        out = []
        for t in texts:
            ids = torch.tensor([[self.tokenizer.bos_token_id] + self.tokenizer.encode(t, add_special_tokens=False)])
            hs = self.model(input_ids=ids, output_hidden_states=True).hidden_states
            out.append(torch.stack([h[0] for h in hs]))
        return out
