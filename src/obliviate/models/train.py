"""The one optimisation loop: AdamW, linear warm-up then cosine decay, gradient clipping, progress.

Training from scratch (`train_causal_lm`) and every weight-space unlearning method run through
`optimize`, and it runs through `accelerate`, so `accelerate launch` spreads it over processes.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
from typing import Callable, Iterator

import torch
import torch.distributed as dist
from accelerate import Accelerator, DistributedType
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_cosine_schedule_with_warmup

from obliviate.errors import ObliviateError
from obliviate.models.settings import TrainConfig
from obliviate.models.hf import encode_rows, labelled_logits, pad_rows, token_log_probs
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


class NonFiniteLoss(ObliviateError):
    """The loss became NaN or infinite; `optimize` stops before the optimizer applies it."""

    def __init__(self, desc: str, step: int, total: int, value: float, lr: float):
        self.step, self.total, self.value, self.lr = step, total, value, lr
        super().__init__(f"{desc}: the loss became {value} at step {step} of {total}; "
                         f"lower the learning rate (now {lr:g}, try {lr / 10:g})")


class ShardedPart(tuple):
    """A padded (ids, mask, labels) part of which this process holds an equal share of rows.

    `log_probs` all-gathers the log-probabilities of such a part, so the loss sees the whole
    batch on every process (see `shard`).
    """


def shard(batch, rank: int, world: int):
    """This process's share of a batch: each tuple of row tensors split into `world` equal blocks.

    A part whose rows do not split evenly is kept whole on every process; objects with a
    `shard(rank, world)` method (the unlearning `Batch`) shard themselves.
    """
    if world == 1:
        return batch
    if hasattr(batch, "shard"):
        return batch.shard(rank, world)
    if isinstance(batch, tuple) and batch and all(isinstance(t, torch.Tensor) for t in batch):
        rows = batch[0].shape[0]
        if rows % world:
            return batch
        size = rows // world
        return ShardedPart(t[rank * size : (rank + 1) * size] for t in batch)
    raise TypeError(f"cannot shard a batch of type {type(batch).__name__}")


class _GatherRows(torch.autograd.Function):
    """All-gather a (rows, ...) tensor along rows; differentiable.

    Every process then computes the same whole-batch loss L. The gradient flowing back to this
    process's rows is dL/d(own rows), multiplied by the number of processes because DDP
    averages parameter gradients over them: (1/n) * sum_r n * dL/dx_r * dx_r/dθ = dL/dθ,
    exactly the single-process gradient, with no collective in the backward pass.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        world, rank = dist.get_world_size(), dist.get_rank()
        ctx.world, ctx.rank, ctx.rows = world, rank, x.shape[0]
        out = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(out, x.contiguous())
        return torch.cat(out)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows] * ctx.world


def log_probs(model: PreTrainedModel, part) -> tuple[torch.Tensor, torch.Tensor]:
    """`token_log_probs` of a padded part, gathered over processes when the part is sharded."""
    lp, valid = token_log_probs(model, *part)
    if isinstance(part, ShardedPart):
        lp, valid = _GatherRows.apply(lp), _GatherRows.apply(valid)
    return lp, valid


class _Compute(torch.nn.Module):
    """Runs a loss function inside `forward`, so DDP/FSDP/DeepSpeed wrappers see the whole loss
    computation (losses call submodules such as `get_decoder()` that a wrapper does not expose)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self._no_split_modules = getattr(model, "_no_split_modules", None)  # FSDP auto-wrap reads it

    def forward(self, compute: Callable[[torch.nn.Module], torch.Tensor]) -> torch.Tensor:
        return compute(self.model)


def optimize(model: PreTrainedModel, loss_fn: Callable[[PreTrainedModel, object], torch.Tensor],
             batches: Iterator, total_steps: int, lr: float, warmup: float = 0.0, weight_decay: float = 0.0,
             grad_clip: float = 1.0, desc: str = "optimizing",
             on_step: Callable[[int, float], bool | None] | None = None) -> list[float]:
    """Minimise `loss_fn(model, batch)` over `total_steps` batches; returns the loss of each step.

    `on_step(step, loss)` may return True to stop early. A NaN or infinite loss raises
    `NonFiniteLoss` before the step is applied.

    Under `accelerate launch` every process draws the same batches and takes an equal share of
    each (`shard`), and DDP averages the gradients: a step on n processes is the single-process
    step on the same batch. It is exact for losses built on `log_probs` (gathered, see
    `_GatherRows`); a loss computed on the local rows alone (e.g. on hidden states) sees the mean
    of per-share losses, which equals the whole-batch loss for per-example means of equal shares.
    """
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    rank, world = accelerator.process_index, accelerator.num_processes
    # FSDP and DeepSpeed restructure (shard, recast) the module they wrap: they train a copy whose
    # gathered weights are loaded back into `model` at the end. (Not exercised by the CPU tests.)
    engine = accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    trained = copy.deepcopy(model) if engine else model
    if accelerator.distributed_type == DistributedType.DEEPSPEED:  # batches are ours, not a DataLoader's
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = 1
    opt = torch.optim.AdamW([p for p in trained.parameters() if p.requires_grad], lr=lr,
                            weight_decay=weight_decay, betas=(0.9, 0.98))
    sched = get_cosine_schedule_with_warmup(opt, int(warmup * total_steps), total_steps)
    wrapped, opt = accelerator.prepare(_Compute(trained), opt)
    trained.train()
    losses: list[float] = []
    bar = progress_bar(desc, total_steps) if accelerator.is_main_process else contextlib.nullcontext(lambda: None)
    with bar as advance:
        for step, batch in zip(range(total_steps), batches):
            part = to_device(shard(batch, rank, world), accelerator.device)
            loss = wrapped(lambda m: loss_fn(m, part))
            value = accelerator.reduce(loss.detach().float(), "mean").item() if world > 1 else loss.item()
            if not math.isfinite(value):  # the same value on every process: all stop together
                raise NonFiniteLoss(desc, step + 1, total_steps, value, lr)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(wrapped.parameters(), grad_clip)
            opt.step(), sched.step(), opt.zero_grad(set_to_none=True)
            losses.append(value)
            advance()
            if on_step is not None and _any_process(accelerator, bool(on_step(step, value))):
                break
    if engine:
        full = accelerator.get_state_dict(wrapped)  # the whole weights (on the main process at least)
        if full:
            model.load_state_dict({k.removeprefix("model."): v for k, v in full.items()})
    model.eval()
    return losses


def to_device(batch, device: torch.device):
    """`batch` with every tensor on `device` (tuples keep their type; objects with `to` move themselves)."""
    if isinstance(batch, torch.Tensor) or hasattr(batch, "to"):
        return batch.to(device)
    if isinstance(batch, tuple):
        return type(batch)(to_device(t, device) for t in batch)
    return batch


def _any_process(accelerator: Accelerator, flag: bool) -> bool:
    """True on every process when `flag` is True on any (so all processes stop at the same step)."""
    if accelerator.num_processes == 1:
        return flag
    return bool(accelerator.reduce(torch.tensor(float(flag), device=accelerator.device), "sum").item())


def answer_nll(model: PreTrainedModel, batch: tuple[torch.Tensor, ...], tokens_per_example: int = 10
               ) -> torch.Tensor:
    """Weighted mean over examples of each example's mean completion-token NLL.

    An example of n completion tokens weighs max(1, n / tokens_per_example). A plain token-level
    mean let long biographies drown out the one-token answers that share their batch (QA
    memorisation was markedly slower); a plain per-example mean made a ten-fact biography weigh as
    much as one answer (with the earlier prose biographies the tiny target's VerbMem was 0.46).
    """
    lp, valid = log_probs(model, type(batch)(t.to(model.device) for t in batch))
    n = valid.sum(1)
    weight = (n / tokens_per_example).clamp(min=1)
    return (weight * -lp.sum(1) / n.clamp(min=1)).sum() / weight.sum()


class Anchors:
    """(prompt, completion) pairs on which training holds the model's own next-token distributions.

    The model's logits at each pair's completion positions are recorded once, before training (so
    this works for full fine-tuning as for adapters); `loss` is then the mean KL(recorded ‖ model)
    over the positions of a few pairs drawn each step. An NLL on the same completions sharpens the
    model towards those exact words; the KL keeps the whole distribution, which is what multiple
    choice reads (`benchmarks/smollm2_finetune_probe.py --replay-loss kl|nll` compares the two).
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 pairs: list[tuple[str, str]], weight: float, per_step: int):
        self.rows = encode_rows(tokenizer, [p for p, _ in pairs], [c for _, c in pairs])
        self.weight, self.per_step, self.pad = weight, min(per_step, len(self.rows)), tokenizer.pad_token_id
        model.eval()
        with torch.no_grad():  # one row at a time: positions stay per pair, in `labelled_logits` order
            self.logits = [labelled_logits(model, pad_rows([r], self.pad)) for r in self.rows]

    def draw(self, rng: random.Random) -> list[int]:
        return rng.sample(range(len(self.rows)), self.per_step)

    def loss(self, model: PreTrainedModel, picked: list[int]) -> torch.Tensor:
        from obliviate.methods.losses import kl_divergence  # lazy: importing obliviate.methods imports this module

        part = to_device(pad_rows([self.rows[i] for i in picked], self.pad), model.device)
        reference = torch.cat([self.logits[i] for i in picked]).to(model.device)
        return self.weight * kl_divergence(reference, labelled_logits(model, part))


class _Anchored:
    """A training batch plus the anchor pairs drawn for its step."""

    def __init__(self, main, picked: list[int]):
        self.main, self.picked = main, picked

    def to(self, device: torch.device) -> "_Anchored":
        return _Anchored(to_device(self.main, device), self.picked)


def train_causal_lm(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                    examples: list[tuple[str, str]], cfg: TrainConfig, seed: int, desc: str = "training",
                    on_epoch_end: Callable[[int, float], None] | None = None,
                    anchors: Anchors | None = None) -> list[float]:
    """Train on (prompt, completion) pairs with loss on completion tokens; returns per-epoch loss.

    With `anchors`, every step adds their KL term on a few anchor pairs (a single process only:
    the anchor draw is not sharded)."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    rows = encode_rows(tokenizer, [p for p, _ in examples], [c for _, c in examples])
    lengths = [len(r) for r, _ in rows]
    steps_per_epoch = -(-len(rows) // cfg.batch_size)

    def batches():
        for _ in range(cfg.epochs):
            for b in length_batches(lengths, cfg.batch_size, rng):
                batch = pad_rows([rows[i] for i in b], tokenizer.pad_token_id)
                yield batch if anchors is None else _Anchored(batch, anchors.draw(rng))

    losses: list[float] = []

    def after_step(step: int, loss: float) -> None:
        losses.append(loss)
        if on_epoch_end is not None and (step + 1) % steps_per_epoch == 0:
            model.eval()
            on_epoch_end(step // steps_per_epoch, sum(losses[-steps_per_epoch:]) / steps_per_epoch)
            model.train()

    def loss(model, batch):
        if anchors is None:
            return answer_nll(model, batch, cfg.tokens_per_example)
        return answer_nll(model, batch.main, cfg.tokens_per_example) + anchors.loss(model, batch.picked)

    optimize(model, loss, batches(), steps_per_epoch * cfg.epochs, cfg.lr, cfg.warmup, cfg.weight_decay,
             cfg.grad_clip, desc, on_step=after_step)
    return [sum(losses[i : i + steps_per_epoch]) / len(losses[i : i + steps_per_epoch])
            for i in range(0, len(losses), steps_per_epoch)]
