"""Supervised unlearning methods (regression and classification MLPs), in their own registry.

Importing this package registers them in `obliviate.supervised.registry.SUPERVISED_METHODS`:
baselines retain_ft, random_labels, gradient_ascent; blindspot and gaussian_ft (Tarun et al. 2023,
Deep Regression Unlearning); laf (Shen et al. 2024, Label-Agnostic Forgetting).
"""

from obliviate.methods.supervised import (  # noqa: F401  (each import registers one method)
    blindspot,
    gaussian_ft,
    gradient_ascent,
    laf,
    random_labels,
    retain_ft,
)
from obliviate.methods.supervised.common import SupervisedUnlearner

__all__ = ["SupervisedUnlearner"]
