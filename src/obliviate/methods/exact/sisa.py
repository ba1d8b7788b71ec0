"""SISA: Sharded, Isolated, Sliced, Aggregated training (Bourtoule et al. 2021, "Machine
Unlearning", IEEE S&P, arXiv 1912.03817).

The people are split into S disjoint shards and each shard into R slices. One constituent per
shard starts from the public base and trains slice by slice, slice i on the union of slices 1..i
(with a fresh optimizer and a seed fixed by (shard, slice)), saving a checksummed checkpoint after
each slice. Deleting items retrains only their shards, each from the checkpoint saved before its
earliest affected slice: the result is bit-identical to training that shard from the base without
those items (tests/test_exact.py proves it with `torch.equal`).

    obliviate run --set 'methods=[sisa]' --set method_args.sisa.shards=5
    store = SISAStore.create(None, tokenizer, target.model.config, bench, ExactConfig(), seed=0)
    store.delete(store.items_of_people({"Sorrel Foxley"}));  lm = store.language_model()
"""

from __future__ import annotations

import time

from safetensors.torch import load_model, save_model

from obliviate.methods.exact.method import ExactMethod
from obliviate.methods.exact.store import ExactConfig, ExactStore, sub_seed, train_on
from obliviate.registry import register_method


def checkpoint_name(shard: int, slc: int) -> str:
    return f"shard-{shard:02d}/slice-{slc:02d}.safetensors"


class SISAStore(ExactStore):
    kind = "sisa"

    def start_of(self, shard: int, slc: int):
        """The weights shard `shard` had before slice `slc`: the base, or the previous slice's checkpoint."""
        model = self.base_model()
        if slc > 0:
            load_model(model, self.record.verify(self.path, checkpoint_name(shard, slc - 1)))
        return model

    def train_shard(self, shard: int, first: int = 0) -> int:
        """Train slices first..R-1 of `shard`, each on slices 0..i, saving a checkpoint after each."""
        model, steps = self.start_of(shard, first), 0
        for slc in range(first, self.config.slices):
            ids = self.record.live(shard, range(slc + 1))
            data = self.examples(ids, last=slc == self.config.slices - 1)
            steps += train_on(model, self.tokenizer, data, self.config, self.config.epochs,
                              sub_seed(self.record.seed, "sisa", shard, slc), f"sisa: shard {shard} slice {slc}")
            name = checkpoint_name(shard, slc)
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            save_model(model, str(self.path / name))
            self.record.record(self.path, name)
        return steps

    def train_all(self) -> None:
        self.steps = sum(self.train_shard(s) for s in range(self.config.shards))

    def _delete(self, ids: list[str]) -> dict:
        start = time.perf_counter()
        first: dict[int, int] = {}
        for i in ids:
            r = self.record.items[i]
            first[r["shard"]] = min(first.get(r["shard"], r["slice"]), r["slice"])
        for shard, slc in first.items():  # every start point is checked before anything changes
            self.record.verify(self.path, "base/model.safetensors")
            if slc > 0:
                self.record.verify(self.path, checkpoint_name(shard, slc - 1))
        self.record.mark_deleted(ids)
        self.steps = sum(self.train_shard(shard, slc) for shard, slc in sorted(first.items()))
        return {"retrained": {str(s): f"slices {k}..{self.config.slices - 1}" for s, k in sorted(first.items())},
                "steps": self.steps, "seconds": round(time.perf_counter() - start, 3)}

    def constituents(self) -> list:
        return [self.start_of(shard, self.config.slices) for shard in range(self.config.shards)]


@register_method("sisa")
class SISA(ExactMethod):
    """Trains SISA shards on world + forget + retain, then deletes the forget people exactly."""
    config_class = ExactConfig
    store_class = SISAStore
    name = "sisa"
