"""The registry of supervised unlearning methods, apart from the language-model METHODS.

A supervised method takes a small torch model (MLP) and tensors, not a LanguageModel, so it is
never offered to an LLM run and an LLM method is never offered to a supervised run.

    from obliviate.supervised.registry import SUPERVISED_METHODS, register_supervised
"""

from __future__ import annotations

from obliviate.registry import Registry

SUPERVISED_METHODS: Registry[type] = Registry("supervised method")
register_supervised = SUPERVISED_METHODS.register


def supervised_methods() -> Registry[type]:
    """The registry, filled: the built-in methods register themselves on import."""
    import obliviate.methods.supervised  # noqa: F401

    return SUPERVISED_METHODS
