"""Unlearning methods. Importing this package registers every method in `METHODS`."""

from obliviate.methods import weight_space  # noqa: F401  (registers the weight-space methods)
from obliviate import guards  # noqa: F401  (registers the inference-time guards: eco, guard, alu)
from obliviate.methods import exact  # noqa: F401  (registers the exact methods: sisa, s3t)
from obliviate.methods.base import UnlearnConfig, Unlearner
from obliviate.registry import METHODS, register_method

__all__ = ["METHODS", "UnlearnConfig", "Unlearner", "register_method"]
