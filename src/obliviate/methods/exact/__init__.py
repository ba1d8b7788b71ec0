"""Exact unlearning: SISA and S3T. Importing this package registers `sisa` and `s3t`.

    from obliviate.methods.exact import load_exact
    lm = load_exact("runs/tiny/cache/method-sisa-…")   # an EnsembleLanguageModel
    lm.store.delete(lm.store.items_of_people({"Sorrel Foxley"}))
"""

from obliviate.methods.exact import s3t, sisa  # noqa: F401  (registers the methods)
from obliviate.methods.exact.ensemble import EnsembleLanguageModel
from obliviate.methods.exact.lineage import Lineage, item_id
from obliviate.methods.exact.s3t import S3TConfig, S3TStore
from obliviate.methods.exact.sisa import SISAStore
from obliviate.methods.exact.store import ExactConfig, deletable_items, is_exact_dir, load_exact

__all__ = ["EnsembleLanguageModel", "ExactConfig", "Lineage", "S3TConfig", "S3TStore", "SISAStore",
           "deletable_items", "is_exact_dir", "item_id", "load_exact"]
