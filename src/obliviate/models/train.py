"""The one optimisation loop: AdamW, linear warm-up then cosine decay, gradient clipping, progress.

Training from scratch (`train_causal_lm`) and every weight-space unlearning method run through
`optimize`, and it runs through `accelerate`, so `accelerate launch` spreads it over processes.
"""

from __future__ import annotations

import functools
import itertools
import random
from typing import Callable, Iterator

import torch
from accelerate import Accelerator
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_cosine_schedule_with_warmup

from obliviate.models.settings import TrainConfig
from obliviate.models.hf import encode_rows, pad_rows, token_log_probs
from obliviate.progress import progress_bar

Rows = list[tuple[list[int], list[int]]]


def length_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar length (little padding), in a shuffled order."""
    order = rng.sample(range(len(lengths)), len(lengths))
    pool = batch_size * 16
    batches = []
    for i in range(0, len(order), pool):
        chunk = sorted(order[i : i + pool], key=lengths.__getitem__)
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def optimize(model: PreTrainedModel, loss_fn: Callable[[PreTrainedModel, object], torch.Tensor],
             batches: Iterator, total_steps: int, lr: float, warmup: float = 0.0, weight_decay: float = 0.0,
             grad_clip: float = 1.0, desc: str = "optimizing",
             on_step: Callable[[int, float], bool | None] | None = None) -> list[float]:
    """Minimise `loss_fn(model, batch)` over `total_steps` batches; returns the loss of each step.

    `on_step(step, loss)` may return True to stop early.
    """
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    if accelerator.num_processes > 1:  # under `accelerate launch`: each process takes its own stride
        batches = itertools.islice(batches, accelerator.process_index, None, accelerator.num_processes)
        total_steps = max(1, total_steps // accelerator.num_processes)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                            weight_decay=weight_decay, betas=(0.9, 0.98))
    sched = get_cosine_schedule_with_warmup(opt, int(warmup * total_steps), total_steps)
    model, opt = accelerator.prepare(model, opt)
    model.train()
    losses: list[float] = []
    with progress_bar(desc, total_steps) as advance:
        for step, batch in zip(range(total_steps), batches):
            loss = loss_fn(model, batch)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step(), sched.step(), opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
            advance()
            if on_step is not None and on_step(step, losses[-1]):
                break
    model.eval()
    return losses


def answer_nll(model: PreTrainedModel, batch: tuple[torch.Tensor, ...], tokens_per_example: int = 10
               ) -> torch.Tensor:
    """Weighted mean over examples of each example's mean completion-token NLL.

    An example of n completion tokens weighs max(1, n / tokens_per_example). A plain token-level
    mean let long biographies drown out the one-token answers that share their batch (QA
    memorisation was markedly slower); a plain per-example mean made a ten-fact biography weigh as
    much as one answer (with the earlier prose biographies the tiny target's VerbMem was 0.46).
    """
    lp, valid = token_log_probs(model, *(t.to(model.device) for t in batch))
    n = valid.sum(1)
    weight = (n / tokens_per_example).clamp(min=1)
    return (weight * -lp.sum(1) / n.clamp(min=1)).sum() / weight.sum()


def train_causal_lm(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                    examples: list[tuple[str, str]], cfg: TrainConfig, seed: int, desc: str = "training",
                    on_epoch_end: Callable[[int, float], None] | None = None) -> list[float]:
    """Train on (prompt, completion) pairs with loss on completion tokens; returns per-epoch loss."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    rows = encode_rows(tokenizer, [p for p, _ in examples], [c for _, c in examples])
    lengths = [len(r) for r, _ in rows]
    steps_per_epoch = -(-len(rows) // cfg.batch_size)

    def batches():
        for _ in range(cfg.epochs):
            for b in length_batches(lengths, cfg.batch_size, rng):
                yield pad_rows([rows[i] for i in b], tokenizer.pad_token_id)

    losses: list[float] = []

    def after_step(step: int, loss: float) -> None:
        losses.append(loss)
        if on_epoch_end is not None and (step + 1) % steps_per_epoch == 0:
            model.eval()
            on_epoch_end(step // steps_per_epoch, sum(losses[-steps_per_epoch:]) / steps_per_epoch)
            model.train()

    loss = functools.partial(answer_nll, tokens_per_example=cfg.tokens_per_example)
    optimize(model, loss, batches(), steps_per_epoch * cfg.epochs, cfg.lr, cfg.warmup, cfg.weight_decay,
             cfg.grad_clip, desc, on_step=after_step)
    return [sum(losses[i : i + steps_per_epoch]) / len(losses[i : i + steps_per_epoch])
            for i in range(0, len(losses), steps_per_epoch)]
