"""The local model behind `obliviate serve`: one thread owns it, and concurrent requests are batched.

    engine = Engine(lm, guard="guard")           # starts the model thread
    job = engine.submit(ids, guard_prompt, params, decision)   # a Job; job.future -> (text, finish_reason)
    engine.swap(new_lm)                          # a new model version, taken between batches

Batching: the model thread takes the first waiting job, then every job that arrives within
`window_s` (default 5 ms) up to `max_batch`, classifies the batch's prompts in one embedding call,
and runs each group of jobs that share sampling parameters as one left-padded `generate` call. A streaming job runs alone, its tokens pushed to its
queue as they come. Flagged prompts are batched with the rest under the default guard (GUARD's
forbidden-continuation penalty is a per-row logits processor: rows with nothing forbidden are
untouched); under `eco` (noised input embeddings) and `alu` (the served model audits its own
drafts), a flagged prompt goes through that guard's own greedy path, alone. An exact store's
ensemble (SISA, S3T) decodes its mixture greedily, whatever the sampling parameters.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from obliviate.guards.base import GUARDED_KINDS
from obliviate.guards.classifier import Decision
from obliviate.models.hf import uses_chat_template

NOTHING = Decision(False, 0.0, (), ())


@dataclass(frozen=True)
class Params:
    max_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()

    @property
    def key(self) -> tuple:
        return (self.max_tokens, self.temperature if self.temperature > 0 else 0.0, self.top_p, self.stop)


@dataclass
class Job:
    ids: list[int]  # the prompt as the model sees it (template applied)
    guard_prompt: str  # the prompt as the guards see it
    params: Params
    classify_text: str | None = None  # what the classifier reads (None: nothing to classify)
    snapshot: object | None = None  # the shield's snapshot the request was received under
    decision: Decision | None = None  # set by the engine, before generation
    stream: "queue.Queue[str | None] | None" = None
    future: Future = field(default_factory=Future)
    classified: threading.Event = field(default_factory=threading.Event)

    @property
    def flagged(self) -> bool:
        return self.decision is not None and self.decision.fired

    @property
    def classifier(self):
        return getattr(self.snapshot, "classifier", None)


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """`text` up to its first stop string, and whether one was found."""
    cuts = [text.index(s) for s in stop if s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


def render_prompt(tokenizer, messages: list[dict]) -> tuple[list[int], str]:
    """(prompt token ids, the prompt text the guards see) of a chat.

    An instruct model gets its chat template over the whole conversation. A model without one (the
    tiny presets, trained on "Question: ...\\nAnswer:") gets the last user turn in that format.
    """
    from obliviate.data import format_prompt

    last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), messages[-1]["content"])
    if uses_chat_template(tokenizer):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"], last_user
    prompt = format_prompt(last_user)
    return [tokenizer.bos_token_id, *tokenizer.encode(prompt, add_special_tokens=False)], prompt


class GuardedLineEnd(StoppingCriteria):
    """Ends a guarded row at its first line break. GUARD's penalty can push the model off its
    answer, and what follows is not one: on SmolLM2 a guarded year ran "97\n\nIn the year of the
    year, which" to max_tokens, and the whole batch waited for it."""

    def __init__(self, guarded: list[bool], newline_ids: frozenset[int]):
        self.guarded, self.newline_ids = guarded, newline_ids

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        last = input_ids[:, -1].tolist()
        return torch.tensor([g and t in self.newline_ids for g, t in zip(self.guarded, last)])


class QueueStreamer(BaseStreamer):
    """Pushes each new piece of decoded text to a queue (None at the end); the first `put` is the prompt."""

    def __init__(self, tokenizer, out: "queue.Queue[str | None]", stop: tuple[str, ...]):
        self.tokenizer, self.out, self.stop = tokenizer, out, stop
        self.ids: list[int] = []
        self.sent, self.prompt_seen, self.stopped = "", False, False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        if self.stopped:
            return
        self.ids += value.flatten().tolist()
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            return
        text, self.stopped = cut_at_stop(text, self.stop)
        if len(text) > len(self.sent):
            self.out.put(text[len(self.sent):])
            self.sent = text

    def end(self) -> None:
        self.out.put(None)


class Engine:
    """Owns the model on one thread; `submit` from any thread, `close` to stop after the current batch."""

    def __init__(self, lm, guard: str = "guard", window_s: float = 0.005, max_batch: int = 32,
                 guard_config: dict | None = None, shield=None):
        if guard not in GUARDED_KINDS:
            raise ValueError(f"unknown guard {guard!r}; choose one of {', '.join(sorted(GUARDED_KINDS))}")
        self.lm, self.guard, self.window_s, self.max_batch, self.shield = lm, guard, window_s, max_batch, shield
        self.guard_config = GUARDED_KINDS[guard].config_class(**(guard_config or {}))
        self.jobs: "queue.Queue[Job | None]" = queue.Queue()
        self.batches = 0
        self._next_lm = None
        self._thread = threading.Thread(target=self._loop, name="obliviate-engine", daemon=True)
        self._thread.start()

    @property
    def tokenizer(self):
        return self.lm.tokenizer

    @functools.cached_property
    def newline_ids(self) -> frozenset[int]:
        tok = self.tokenizer
        return frozenset(i for i in range(len(tok)) if "\n" in tok.decode([i]))

    def default_stop(self) -> tuple[str, ...]:
        # A model without a chat template was trained to end an answer at the line's end.
        return () if uses_chat_template(self.tokenizer) else ("\n",)

    def submit(self, job: Job) -> Job:
        self.jobs.put(job)
        return job

    def swap(self, lm) -> None:
        """Serve `lm` from the next batch on (the current one finishes on the old model)."""
        self._next_lm = lm

    def close(self) -> None:
        self.jobs.put(None)
        self._thread.join(timeout=30)

    # --- the model thread ------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            batch, deadline = [job], time.monotonic() + self.window_s
            while len(batch) < self.max_batch and not batch[0].stream:
                try:
                    nxt = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    self.jobs.put(None)
                    break
                batch.append(nxt)
            if self._next_lm is not None:
                self.lm, self._next_lm = self._next_lm, None
            self.batches += 1
            self._classify(batch)
            for group in self._groups(batch):
                try:
                    results = self._run(group)
                except Exception as err:  # noqa: BLE001 - a failed batch fails its requests, not the server
                    for j in group:
                        if j.stream is not None:
                            j.stream.put(None)
                        j.future.set_exception(err)
                    continue
                for j, r in zip(group, results):
                    j.future.set_result(r)

    def _classify(self, batch: list[Job]) -> None:
        """Decide every job of the batch, one embedding call per snapshot (not one per request)."""
        todo: dict[int, list[Job]] = {}
        for j in batch:
            if j.classify_text is not None and j.classifier is not None and self.shield is not None:
                todo.setdefault(id(j.snapshot), []).append(j)
        for jobs in todo.values():
            try:
                for j, d in zip(jobs, self.shield.classify([j.classify_text for j in jobs], jobs[0].snapshot)):
                    j.decision = d
            except Exception as err:  # noqa: BLE001 - unclassified means unanswered: fail the jobs
                for j in jobs:
                    j.classify_text = None
                    j.future.set_exception(err)
        for j in batch:
            j.classified.set()

    def _groups(self, batch: list[Job]) -> list[list[Job]]:
        groups: dict[tuple, list[Job]] = {}
        batch = [j for j in batch if not j.future.done()]
        for i, j in enumerate(batch):
            alone = j.stream is not None or (j.flagged and self.guard != "guard")
            groups.setdefault(("alone", i) if alone else j.params.key, []).append(j)
        return list(groups.values())

    def _guarded_model(self, job: Job):
        state = {"sigma": self.guard_config.sigma or 4.0, "scope": "entity"} if self.guard == "eco" else {}
        return GUARDED_KINDS[self.guard](self.lm, job.classifier, self.guard_config, state=state)

    def _processor(self, group: list[Job], width: int):
        if self.guard != "guard" or not any(j.flagged for j in group):
            return None
        return self._guarded_model(next(j for j in group if j.flagged))._processor(
            [j.decision if j.flagged else NOTHING for j in group], [width] * len(group))

    @torch.no_grad()
    def _run(self, group: list[Job]) -> list[tuple[str, str]]:
        first, tok = group[0], self.tokenizer
        if hasattr(self.lm, "models"):  # an exact store's ensemble: its own greedy decoding of the mixture
            texts = self.lm.generate([j.guard_prompt for j in group], first.params.max_tokens)
            if first.stream is not None:
                first.stream.put(texts[0])
                first.stream.put(None)
            return [(cut_at_stop(t, first.params.stop)[0], "stop") for t in texts]
        if first.flagged and self.guard != "guard":
            text = self._guarded_model(first).generate([first.guard_prompt], first.params.max_tokens)[0]
            if first.stream is not None:
                first.stream.put(text)
                first.stream.put(None)
            return [(text, "stop")]
        params, width = first.params, max(len(j.ids) for j in group)
        ids = torch.tensor([[tok.pad_token_id] * (width - len(j.ids)) + j.ids for j in group])
        mask = torch.tensor([[0] * (width - len(j.ids)) + [1] * len(j.ids) for j in group])
        proc = self._processor(group, width)
        sample = params.temperature > 0
        kwargs = dict(max_new_tokens=params.max_tokens, do_sample=sample, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id,
                      logits_processor=LogitsProcessorList([proc]) if proc is not None else None)
        guarded = [j.flagged for j in group] if proc is not None else []
        if any(guarded):
            kwargs.update(stopping_criteria=StoppingCriteriaList([GuardedLineEnd(guarded, self.newline_ids)]))
        if sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=tok)
        streamer = QueueStreamer(tok, first.stream, params.stop) if first.stream is not None else None
        out = self.lm.model.generate(input_ids=ids, attention_mask=mask, streamer=streamer, **kwargs)
        results = []
        for i, row in enumerate(out):
            new = row[width:].tolist()
            stop = params.stop + ("\n",) if guarded and guarded[i] else params.stop
            text, stopped = cut_at_stop(tok.decode(new, skip_special_tokens=True), stop)
            ended = stopped or tok.eos_token_id in new or len(new) < params.max_tokens
            results.append((text.strip() if not uses_chat_template(tok) else text, "stop" if ended else "length"))
        return results
