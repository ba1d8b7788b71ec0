"""Built-in offline supervised tasks: a synthetic grouped regression, scikit-learn's diabetes and digits.

    from obliviate.supervised.tasks import build_task
    task = build_task(cfg)            # cfg: a SupervisedRunConfig
    task.retain.x, task.forget.y, task.test, task.forget_test

Every task is split into train and test once (stratified by group or class), then the train part
into forget and retain: `random` forgets a random share of the train samples, `group` forgets
every train sample of one group (synthetic) or class (digits). `forget_test` holds unseen samples
from the forget set's own distribution (the same group or class; for random forgetting, the whole
test set), the non-members of the membership attack. `test` holds unseen samples of what is kept.
Regression features and targets are standardised with retain statistics, so gold owes nothing to
the forget set (`y_mean`, `y_std` turn predictions back into the data's units); digits pixels are
kept in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from obliviate.errors import ObliviateError


@dataclass
class Split:
    x: torch.Tensor
    y: torch.Tensor  # (n, 1) float targets (regression) or (n,) class indices (classification)

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Task:
    name: str
    kind: str  # "regression" or "classification"
    retain: Split
    forget: Split
    test: Split
    forget_test: Split
    n_features: int
    n_outputs: int
    y_mean: float = 0.0
    y_std: float = 1.0

    def sizes(self) -> dict[str, int]:
        return {s: len(getattr(self, s)) for s in ("retain", "forget", "test", "forget_test")}


def synthetic_groups(groups: int, per_group: int, features: int, noise: float, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Groups sit side by side along feature 0 (like age bands); each has its own slope on feature 4,
    so a model that never saw a group has to interpolate it from its neighbours."""
    if features < 5:
        raise ObliviateError(f"synthetic.features must be at least 5, got {features}; e.g. synthetic.features=8")
    g = np.repeat(np.arange(groups), per_group)
    x = rng.normal(size=(len(g), features))
    x[:, 0] = x[:, 0] * 0.5 + 1.5 * (g - (groups - 1) / 2)
    slope = np.linspace(-1.5, 1.5, groups)[g]
    y = np.sin(1.5 * x[:, 0]) + x[:, 1] * x[:, 2] + 0.5 * x[:, 3] + slope * x[:, 4] + noise * rng.normal(size=len(g))
    return x, y, g


def _load(cfg) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Features, targets, groups (the class for digits; none for diabetes) and the task kind."""
    rng = np.random.default_rng(cfg.seed)
    if cfg.task == "synthetic":
        s = cfg.synthetic
        x, y, g = synthetic_groups(s.groups, s.per_group, s.features, s.noise, rng)
        return x, y, g, "regression"
    if cfg.task == "diabetes":
        from sklearn.datasets import load_diabetes

        data = load_diabetes()
        return data.data, data.target.astype(float), np.zeros(len(data.target), dtype=int), "regression"
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data / 16.0, data.target, data.target, "classification"


def build_task(cfg) -> Task:
    """The task named by `cfg.task`, split by `cfg.test_fraction` and `cfg.forget` with `cfg.seed`."""
    from sklearn.model_selection import train_test_split

    x, y, groups, kind = _load(cfg)
    f = cfg.forget
    idx = np.arange(len(y))
    train, test = train_test_split(idx, test_size=cfg.test_fraction, random_state=cfg.seed, stratify=groups)
    if f.kind == "group":
        known = sorted(set(groups.tolist()))
        if len(known) < 2:
            raise ObliviateError(f"task '{cfg.task}' has no groups to forget; use forget.kind=random")
        if f.group not in known:
            raise ObliviateError(f"forget.group={f.group} is not a group of task '{cfg.task}'; "
                                 f"pick one of {known}")
        in_group = groups == f.group
        forget, retain = train[in_group[train]], train[~in_group[train]]
        forget_test, test = test[in_group[test]], test[~in_group[test]]
    else:
        rng = np.random.default_rng(cfg.seed + 1)
        order = rng.permutation(train)
        n = max(1, round(f.fraction * len(train)))
        forget, retain, forget_test = np.sort(order[:n]), np.sort(order[n:]), test
    if kind == "regression":  # scaled with retain statistics only: gold must owe nothing to the forget set
        mu, sd = x[retain].mean(0), x[retain].std(0)
        x = (x - mu) / np.where(sd > 1e-8, sd, 1.0)
    xs = torch.tensor(x, dtype=torch.float32)  # digits stay in [0, 1]: a pixel nearly constant in training
    if kind == "regression":                    # would blow up, after scaling, in the few images that use it
        y_mean, y_std = float(y[retain].mean()), float(y[retain].std())
        ys = torch.tensor((y - y_mean) / y_std, dtype=torch.float32).unsqueeze(1)
        n_out = 1
    else:
        y_mean, y_std = 0.0, 1.0
        ys = torch.tensor(y, dtype=torch.long)
        n_out = int(y.max()) + 1
    part = lambda ids: Split(xs[ids], ys[ids])  # noqa: E731
    return Task(cfg.task, kind, part(retain), part(forget), part(test), part(forget_test), x.shape[1], n_out,
                y_mean, y_std)
