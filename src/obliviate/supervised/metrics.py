"""Supervised metrics: error or accuracy per split, loss-based membership inference, distance to gold.

    results = evaluate(model, task, gold)   # {name: MetricResult}

- Regression: RMSE, MAE (in the target's own units) and R² on retain, forget, test, forget_test.
- Classification: accuracy on the same splits.
- `mia_auc`: ROC AUC of a loss-threshold membership attack (Yeom et al. 2018, arXiv 1709.01604):
  score = -loss, members = the forget set, non-members = forget_test (unseen samples of the forget
  set's own distribution: held-out samples of the same class or group, or the test set for random
  forgetting). Like is compared with like: against test samples of *other* classes, gold's AUC on a
  class it never saw would be near 0, not 0.5. For gold, members and non-members are alike unseen,
  so its AUC is 0.5 up to sampling noise, whose size `chance_auc_sd` gives (Hanley & McNeil 1982):
  0.072 for digits' 18 forgotten images against 165, 0.024 for synthetic's 360 against 240.
- `mia_ref_auc`: the same attack calibrated by per-sample difficulty (Watson et al. 2022, arXiv
  2111.08440) with gold as the reference model: score = loss_gold - loss_model. Stronger where
  the plain loss barely separates (digits: every confident sample has a tiny loss); exactly 0.5
  for gold itself, so gold's check is the plain `mia_auc`.
- `act_dist`: activation distance (Chundawat et al. 2023, arXiv 2205.08096): mean L2 distance between
  the model's and gold's output activations on the forget set (softmax probabilities for
  classification, standardised predictions for regression).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F
from sklearn.metrics import r2_score, roc_auc_score

from obliviate.evals.metric import MetricResult
from obliviate.supervised.train import task_loss

SPLITS = ("retain", "forget", "test", "forget_test")


@torch.no_grad()
def per_example_loss(model, x: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """The task loss per sample, in float64. Cross-entropy is written as softplus(logsumexp_{j != y}(z_j - z_y)):
    a memorised sample's loss (~1e-20) would round to exactly 0 in float32 and tie with every other
    confident sample, which hides membership from the attack."""
    out = model(x).double()
    if kind == "regression":
        return task_loss(kind, out, y.double(), reduction="none")
    margin = out - out.gather(1, y[:, None])
    margin = margin.masked_fill(F.one_hot(y, out.shape[1]).bool(), float("-inf"))
    return F.softplus(torch.logsumexp(margin, dim=1))


def mia_auc(member_losses: torch.Tensor, nonmember_losses: torch.Tensor) -> float:
    """AUC of telling members from non-members by low loss (0.5: indistinguishable)."""
    labels = [1] * len(member_losses) + [0] * len(nonmember_losses)
    scores = torch.cat([-member_losses, -nonmember_losses]).tolist()
    return float(roc_auc_score(labels, scores))


def chance_auc_sd(n_members: int, n_nonmembers: int) -> float:
    """Standard deviation of the ROC AUC of two samples from one distribution (true AUC 0.5),
    Hanley & McNeil (1982): sqrt((n1 + n0 + 1) / (12 n1 n0))."""
    return ((n_members + n_nonmembers + 1) / (12 * n_members * n_nonmembers)) ** 0.5


@torch.no_grad()
def activation_distance(model, gold, x: torch.Tensor, kind: str) -> float:
    a, b = model(x), gold(x)
    if kind == "classification":
        a, b = a.softmax(-1), b.softmax(-1)
    return float((a - b).norm(dim=1).mean())


def _split_metrics(model, task, split: str) -> dict[str, MetricResult]:
    s = getattr(task, split)
    with torch.no_grad():
        out = model(s.x)
    where = f"on {split} ({len(s)} samples)"
    if task.kind == "classification":
        acc = float((out.argmax(-1) == s.y).float().mean())
        return {f"{split}_acc": MetricResult(f"{split}_acc", acc, [], None if split.startswith("forget") else True,
                                             f"accuracy {where}")}
    pred, y = out[:, 0].numpy() * task.y_std, s.y[:, 0].numpy() * task.y_std  # back to the data's units
    err = pred - y
    better = None if split.startswith("forget") else False  # forget: closer to gold is better
    return {
        f"{split}_rmse": MetricResult(f"{split}_rmse", float((err ** 2).mean() ** 0.5), [], better,
                                      f"root mean squared error {where}, target units"),
        f"{split}_mae": MetricResult(f"{split}_mae", float(abs(err).mean()), [], better,
                                     f"mean absolute error {where}, target units"),
        f"{split}_r2": MetricResult(f"{split}_r2", float(r2_score(y, pred)), [],
                                    None if better is None else True, f"coefficient of determination R² {where}"),
    }


def evaluate(model, task, gold) -> dict[str, MetricResult]:
    model.eval()
    results: dict[str, MetricResult] = {}
    for split in SPLITS:
        results |= _split_metrics(model, task, split)
    members = per_example_loss(model, task.forget.x, task.forget.y, task.kind)
    others = per_example_loss(model, task.forget_test.x, task.forget_test.y, task.kind)
    results["mia_auc"] = MetricResult(
        "mia_auc", mia_auc(members, others), [], None,
        f"ROC AUC of a loss-threshold membership attack, forget ({len(members)}) vs forget_test ({len(others)}); "
        "gold (never saw the forget set) is the reference: 0.5 up to chance, sd "
        f"{chance_auc_sd(len(members), len(others)):.3f} at these sizes")
    ref_members = members - per_example_loss(gold, task.forget.x, task.forget.y, task.kind)
    ref_others = others - per_example_loss(gold, task.forget_test.x, task.forget_test.y, task.kind)
    results["mia_ref_auc"] = MetricResult(
        "mia_ref_auc", mia_auc(ref_members, ref_others), [], None,
        "ROC AUC of the difficulty-calibrated loss attack (score: gold's loss minus the model's), forget vs "
        "forget_test; 0.5 for gold by construction")
    results["act_dist"] = MetricResult(
        "act_dist", activation_distance(model, gold, task.forget.x, task.kind), [], False,
        "mean L2 distance of output activations to gold's on the forget set (probabilities or standardised "
        "predictions); 0 = behaves like gold")
    return results
