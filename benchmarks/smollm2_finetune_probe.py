"""What LoRA fine-tuning on the fictitious people does to SmolLM2's pretrained world knowledge.

    python benchmarks/smollm2_finetune_probe.py --replay 0                   # no replay of general answers
    python benchmarks/smollm2_finetune_probe.py --replay 24 --replay-loss nll  # replayed answers trained as text
    python benchmarks/smollm2_finetune_probe.py --replay 24                  # the preset: KL anchors on them

Fine-tunes one target as the `smollm2` preset does (LoRA r 16 on every linear layer, merged) and
scores the untouched and the fine-tuned model three ways on the 100 built-in world questions:
multiple choice inside the chat template, multiple choice in the plain prompt format (what
`world_mc_acc` uses), and by generation (the greedy reply contains the answer). Prints and saves
JSON (benchmarks/results/smollm2_finetune_probe_replay<N>[_nll].json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def scores(lm, questions) -> dict:
    from obliviate.data import format_prompt
    from obliviate.evals.multiple_choice import choice_log_likelihoods
    from obliviate.evals.qa import rouge_l_recall

    def mc(lm):
        best = [max(range(len(s)), key=s.__getitem__) for s in choice_log_likelihoods(lm, questions)]
        return sum(b == q["answer"] for b, q in zip(best, questions)) / len(questions)

    plain = mc(lm)
    template = lm.tokenizer.chat_template
    # choice_log_likelihoods strips the template; a no-op stand-in for plain_prompts keeps it on.
    import obliviate.models.hf as hf
    saved, hf.plain_prompts = hf.plain_prompts, lambda _lm: __import__("contextlib").nullcontext()
    try:
        chat = mc(lm)
    finally:
        hf.plain_prompts = saved
    assert lm.tokenizer.chat_template == template
    replies = lm.generate([format_prompt(q["question"]) for q in questions], 24)
    contains = [rouge_l_recall(r, q["choices"][q["answer"]]) == 1.0 for r, q in zip(replies, questions)]
    return {"mc_chat": chat, "mc_plain": plain, "generation_contains": sum(contains) / len(questions),
            "replies": {q["question"]: r for q, r in list(zip(questions, replies))[::20]}}


def main() -> None:
    from obliviate.config import LoraSettings, load_config
    from obliviate.data import build_benchmark
    from obliviate.evals.multiple_choice import world_choice_questions
    from obliviate.evals.qa import answer_match
    from obliviate.methods import lora
    from obliviate.models.build import finetune, general_replay
    from obliviate.models.load import load_language_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replay", type=int, default=24, help="pretrained.replay (0: none)")
    parser.add_argument("--replay-loss", choices=("kl", "nll"), default="kl", help="pretrained.replay_loss")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config("smollm2", [f"pretrained.replay={args.replay}", f"pretrained.replay_loss={args.replay_loss}"])
    bench = build_benchmark(cfg.data)
    suffix = "_nll" if args.replay and args.replay_loss == "nll" else ""
    out = Path(f"benchmarks/results/smollm2_finetune_probe_replay{args.replay}{suffix}.json")
    if args.replay:
        bench.replay = general_replay(cfg.pretrained, out.with_suffix(".replay.jsonl"))
    questions = world_choice_questions(None)
    lm = load_language_model(cfg.pretrained.model)
    result = {"replay": args.replay, "replay_loss": args.replay_loss, "train": cfg.train.model_dump(),
              "untouched": scores(lm, questions)}
    print(json.dumps(result["untouched"]), flush=True)
    torch.manual_seed(cfg.seed)  # as models.build.finetune_role: LoRA's init is drawn at attach
    lm.model = lora.attach(lm.model, LoraSettings(r=cfg.pretrained.lora_r), "all-linear")
    start = time.perf_counter()
    finetune(lm.model, lm.tokenizer, bench, "target", cfg.pretrained, cfg.train, cfg.seed)
    lm.model = lm.model.merge_and_unload()
    result["finetune_s"] = round(time.perf_counter() - start, 1)
    from obliviate.data import format_prompt
    replies = lm.generate([format_prompt(r["question"]) for r in bench.forget])
    result["target"] = scores(lm, questions) | {
        "forget_acc": sum(answer_match(g, r["answer"]) for g, r in zip(replies, bench.forget)) / len(bench.forget)}
    print(json.dumps(result["target"]), flush=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
