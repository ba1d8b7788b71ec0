"""`LanguageModel` over a Hugging Face causal LM and its tokenizer."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

# Tiny models load and save in milliseconds; per-file progress bars would only be noise.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
hf_logging.disable_progress_bar()

IGNORE = -100


def uses_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """An instruct model: its tokenizer carries a chat template (the tiny models' tokenizers do not)."""
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_ids(tokenizer: PreTrainedTokenizerBase, prompts: list[str]) -> list[list[int]]:
    """Token ids of each prompt as the model sees it, up to where the answer starts.

    Plain models get bos + prompt. Instruct models get the prompt as the user turn of their chat
    template, ending with the assistant header, which already starts with the template's own
    special token; an empty prompt (a raw training text) stays bos only.
    """
    if not prompts:
        return []
    if not uses_chat_template(tokenizer):
        return [[tokenizer.bos_token_id, *p] for p in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
    ids = tokenizer(_chat_texts(tokenizer, prompts), add_special_tokens=False)["input_ids"]
    return [i if p else [tokenizer.bos_token_id] for i, p in zip(ids, prompts)]


def _chat_texts(tokenizer: PreTrainedTokenizerBase, prompts: list[str]) -> list[str]:
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                          add_generation_prompt=True) if p else "" for p in prompts]


def prompt_token_spans(tokenizer: PreTrainedTokenizerBase, prompts: list[str]
                       ) -> list[list[tuple[int, int] | None]]:
    """Per prompt, aligned with its `prompt_ids` row: each token's character span within the prompt
    itself, or None for a token outside it (bos, the chat template's own text). Needs a fast tokenizer.

    Guards use it to find a prompt's words among the ids the model sees, wherever a template puts them.
    """
    if not prompts:
        return []
    if not uses_chat_template(tokenizer):
        offsets = tokenizer(list(prompts), add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return [[None, *map(tuple, o)] for o in offsets]
    texts = _chat_texts(tokenizer, prompts)
    offsets = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [_spans_within(o, t, p) if p else [None] for o, t, p in zip(offsets, texts, prompts)]


def _spans_within(offsets, text: str, prompt: str) -> list[tuple[int, int] | None]:
    """Token spans of `text` clipped to where `prompt` sits in it, shifted to start at 0; None outside it."""
    # The prompt is the last user turn: its last occurrence in the text is the one the template placed.
    start, length = text.rfind(prompt), len(prompt)
    if start < 0:
        raise ValueError(f"the chat template does not keep the prompt verbatim, so its tokens cannot be "
                         f"located: {prompt!r} is not in {text!r}")
    return [(max(s, start) - start, min(e, start + length) - start) if s < start + length and start < e else None
            for s, e in offsets]


@contextmanager
def plain_prompts(lm) -> Iterator[None]:
    """Within the block, `lm` sees prompts as plain text (bos + prompt), without its chat template.

    The pretraining format, in which lm-evaluation-harness scores multiple choice by default: it
    asks what the weights know rather than which answer style an instruct fine-tune taught
    (`benchmarks/smollm2_finetune_probe.py` scores both ways). Models without a template are unaffected.
    """
    tok = getattr(lm, "tokenizer", None)
    template = getattr(tok, "chat_template", None)
    if template:
        tok.chat_template = None
    try:
        yield
    finally:
        if template:
            tok.chat_template = template


def encode_rows(tokenizer: PreTrainedTokenizerBase, prompts: list[str], answers: list[str]
                ) -> list[tuple[list[int], list[int]]]:
    """(ids, labels) per pair for prompt+answer+eos (`prompt_ids`), prompt positions masked in the labels.

    Prompt and answer are tokenized separately so the answer's tokens do not depend on the prompt;
    each side is tokenized in one batched call. After a chat template's assistant header the
    answer's leading space is dropped: the model's own replies start there without one.
    """
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    if not prompts:
        return []
    p_all = prompt_ids(tokenizer, list(prompts))
    if uses_chat_template(tokenizer):
        answers = [a.lstrip() if p else a for p, a in zip(prompts, answers)]
    a_all = tokenizer(list(answers), add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    return [([*p, *a, eos], [IGNORE] * len(p) + [*a, eos]) for p, a in zip(p_all, a_all)]


def pad_rows(rows: list[tuple[list[int], list[int]]], pad_id: int
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, attention mask and labels."""
    width = max(len(r) for r, _ in rows)
    ids = torch.tensor([r + [pad_id] * (width - len(r)) for r, _ in rows])
    lab = torch.tensor([l + [IGNORE] * (width - len(l)) for _, l in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r, _ in rows])
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
    target, valid, logits = _labelled_logits(model, ids, mask, labels)
    picked = torch.log_softmax(logits, -1).gather(-1, target[valid].unsqueeze(-1)).squeeze(-1)
    lp = torch.zeros(valid.shape, dtype=picked.dtype, device=picked.device).masked_scatter(valid, picked)
    return lp, valid.float()


def _labelled_logits(model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(next-token targets, mask of labelled positions, float logits at those positions only)."""
    target = labels[:, 1:]
    valid = target != IGNORE
    hidden = model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    return target, valid, model.get_output_embeddings()(hidden[valid]).float()


def labelled_logits(model: PreTrainedModel, part: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Next-token logits at the labelled positions of a padded (ids, mask, labels) part, (positions,
    vocab); the same positions, in the same order, as `token_log_probs` scores."""
    return _labelled_logits(model, *part)[2]


def token_distribution_stats(model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Min-K%++ statistics at the labelled positions, flattened in row-major order (batch, then time).

    Returns (log p of the label token, mu, sigma, 0/1 valid mask of shape (batch, width - 1)), where
    mu_t = E_{z~p_t}[log p_t(z)] and sigma_t = sqrt(E_{z~p_t}[(log p_t(z) - mu_t)^2]) under the
    model's own next-token distribution p_t (Zhang et al. 2024, arXiv 2404.02936). The variance is
    computed centred, which equals E[(log p)^2] - mu^2 without its cancellation error.
    """
    target, valid, logits = _labelled_logits(model, ids, mask, labels)
    return (*distribution_stats(torch.log_softmax(logits, -1), target[valid]), valid)


def distribution_stats(logp: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log p of `target`, mu, sigma) per row of next-token log-probabilities `logp` (positions, vocab)."""
    p = logp.exp()
    picked = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    # p = 0 only where log p = -inf (a -inf logit): those tokens add nothing, not 0 * inf = nan.
    mu = torch.where(p > 0, p * logp, 0.0).sum(-1)
    var = torch.where(p > 0, p * (logp - mu.unsqueeze(-1)).square(), 0.0).sum(-1)
    return picked, mu, var.sqrt()


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

    def scoring_batches(self, prompts: list[str], answers: list[str]
                        ) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(original indices, ids, mask, labels) batches for scoring answers, eos not labelled.

        Tokenizes everything in one call and batches pairs of similar length, so little compute
        goes to padding; callers put results back in order with the indices.
        """
        rows = encode_rows(self.tokenizer, prompts, answers)
        rows = [(ids, labels[:-1] + [IGNORE]) for ids, labels in rows]  # score answers, not the eos
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield (idx, *pad_rows([rows[i] for i in idx], self.tokenizer.pad_token_id))

    @torch.no_grad()
    def log_probs(self, prompts: list[str], answers: list[str]) -> list[torch.Tensor]:
        out: list[torch.Tensor] = [torch.empty(0)] * len(prompts)
        for idx, ids, mask, labels in self.scoring_batches(prompts, answers):
            lp, valid = token_log_probs(self.model, ids, mask, labels)
            for i, row, v in zip(idx, lp, valid.bool()):
                out[i] = row[v]
        return out

    @torch.no_grad()
    def token_stats(self, prompts: list[str], answers: list[str]
                    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per pair, (log p of each answer token, mu, sigma) at the same positions as `log_probs`.

        mu and sigma are the mean and standard deviation of log p(z) for z drawn from the model's
        next-token distribution at that position: the Min-K%++ normalisers (arXiv 2404.02936).
        One forward pass per batch, no per-token loop; `lp` equals `log_probs`'s output.
        """
        out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = [(torch.empty(0),) * 3] * len(prompts)
        for idx, ids, mask, labels in self.scoring_batches(prompts, answers):
            lp, mu, sigma, valid = token_distribution_stats(self.model, ids, mask, labels)
            # Stats are flattened row by row over labelled positions: split them back per row.
            counts = valid.sum(1).tolist()
            for i, a, b, c in zip(idx, lp.split(counts), mu.split(counts), sigma.split(counts)):
                out[i] = (a, b, c)
        return out

    @torch.no_grad()
    def generate(self, prompts: list[str], max_new_tokens: int = 24) -> list[str]:
        tok, out = self.tokenizer, []
        for s in self._batches(len(prompts)):
            rows = prompt_ids(tok, prompts[s])
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
