"""The registered surface of an exact method (`sisa`, `s3t`) in `obliviate run`.

`unlearn(target, bench)` does what an exact method promises: it trains on world + forget + retain
(the target's data; the target itself lends only its tokenizer and architecture), then deletes
the forget split, so the result never trained on it. Given a model such a method returned before
(sequential requests, MUSE sustainability), it deletes the new forget people from a copy of that
model's store instead of training again (people that store never trained on have nothing to delete).
"""

from __future__ import annotations

import time

from obliviate.data import Benchmark
from obliviate.methods.exact.ensemble import EnsembleLanguageModel
from obliviate.methods.exact.store import ExactConfig, ExactStore


class ExactMethod:
    config_class: type[ExactConfig] = ExactConfig
    store_class: type[ExactStore] = ExactStore
    name = "exact"
    supports_lora = False  # blocks are LoRA by design (s3t); the shared loop's LoRA does not apply

    def __init__(self, config: ExactConfig | None = None):
        self.config = config or self.config_class()
        self._facts: dict = {}

    def unlearn(self, target, bench: Benchmark, seed: int = 0) -> EnsembleLanguageModel:
        store = getattr(target, "store", None)
        facts = {"result": "exact: a model that never trained on the forget split (retrained shards or "
                           "deactivated blocks)"}
        if isinstance(store, self.store_class):
            store = store.copy()  # a sequential request: delete from a copy, leave `target` as it was
        else:
            start = time.perf_counter()
            store = self.store_class.create(None, target.tokenizer, target.model.config, bench, self.config, seed)
            facts["train"] = {"steps": store.steps, "seconds": round(time.perf_counter() - start, 2)}
        # A benchmark restricted to part of the forget split (MUSE curves) lacks the other forget people's
        # data, so a store trained on it never saw them: for those there is nothing to delete.
        trained = {r["person"] for r in store.record.items.values()}
        people = [p for p in bench.people("forget") if p in trained]
        ids = store.items_of_people(people) if people else []
        facts["never_trained"] = len(bench.people("forget")) - len(people)
        facts["delete"] = store.delete(ids) if ids else {"steps": 0, "seconds": 0.0}
        facts |= self.after_delete(store) if ids else {}
        facts["items_deleted"] = len(ids)
        self._facts = facts
        return store.language_model(self.name)

    def after_delete(self, store: ExactStore) -> dict:
        """Work a method does once a request is deleted (S3T: drain its retraining queue)."""
        return {}

    def facts(self) -> dict:
        return {"steps": self._facts.get("delete", {}).get("steps"), **self._facts}
