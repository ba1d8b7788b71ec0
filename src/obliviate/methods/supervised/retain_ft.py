"""Baseline: fine-tune on the retain set only, hoping the forget set fades (catastrophic forgetting).

Loss: L(retain, y) for `epochs` passes over retain.

    obliviate run --config digits --set methods=[retain_ft] --set method_args.retain_ft.epochs=20
"""

from __future__ import annotations

from obliviate.methods.supervised.common import RetainConfig, SupervisedUnlearner, fit_pairs
from obliviate.supervised.registry import register_supervised


@register_supervised("retain_ft")
class RetainFT(SupervisedUnlearner):
    config_class = RetainConfig

    def unlearn(self, model, data, seed: int = 0):
        return fit_pairs(model, data.retain_x, data.retain_y, data.kind, self.config, seed)
