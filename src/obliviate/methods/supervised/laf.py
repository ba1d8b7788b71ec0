"""Label-Agnostic Forgetting (Shen et al. 2024, ICLR, arXiv 2404.00506): unlearning without any labels.

The model is an extractor e (the MLP body) and a head. With the extractor frozen, two VAEs learn the
distribution of its representations: h_D on all training inputs (the paper's stand-in for the
retain distribution) and h_f on the forget inputs, as in the authors' code. Then,
for `epochs` passes, two steps alternate on paired retain/forget minibatches, updating e only:

  extractor unlearning (paper's L_UE): keep retain representations well reconstructed by h_D and
  make forget representations badly reconstructed by h_f,
      L_UE = sum_r b(|h_D(e(x_r)) - e(x_r)|^2) - sum_f b(|h_f(e(x_f)) - e(x_f)|^2),  b(m) = exp(m / (m + 1))
  representation alignment (paper's L_RA, contrastive): keep retain representations pointing where
  the original extractor e0 put them, push forget representations away from theirs,
      L_RA = sum_r log( exp(d_r) / sum_f exp(d_f / T) ),  d = 1 - cos(e(x), e0(x))

No label is read (the pipeline hands laf a label-free view of the data; reading one raises). The
paper's optional supervised repair (LAF+R: fine-tune the head on retain labels) is `repair_epochs`,
0 by default; set above 0 it reads retain labels, never forget labels.

    obliviate run --config digits --set methods=[laf] --set method_args.laf.epochs=30
"""

from __future__ import annotations

import copy

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn import functional as F

from obliviate.methods.supervised.common import SupervisedUnlearner, optimise, steps_for
from obliviate.supervised.registry import register_supervised
from obliviate.supervised.train import batches, task_loss


class LAFConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    latent: int = Field(8, ge=1, description="VAE latent dimensions (authors: 8 for their MNIST CNN)")
    vae_epochs: int = Field(20, ge=1, description="epochs each VAE trains on the frozen representations")
    vae_lr: float = Field(1e-3, gt=0, description="Adam learning rate of the VAEs")
    kl_weight: float = Field(0.025, ge=0, description="weight of the VAE's KL term")
    epochs: int = Field(20, ge=1, description="alternating unlearning passes over the forget set")
    lr_ue: float = Field(5e-5, gt=0, description="learning rate of the extractor-unlearning step (authors: 5e-5)")
    lr_ra: float = Field(1e-4, gt=0, description="learning rate of the representation-alignment step (authors: 1e-4)")
    temperature: float = Field(20.0, gt=0, description="contrastive temperature T (authors: 20 for class removal)")
    batch_size: int = Field(32, ge=1, description="minibatch size (retain and forget batches alike)")
    repair_epochs: int = Field(0, ge=0, description="LAF+R: epochs fine-tuning the head on retain labels "
                               "afterwards (0: fully label-free)")
    repair_lr: float = Field(1e-3, gt=0, description="Adam learning rate of the repair step")


class VAE(nn.Module):
    def __init__(self, width: int, latent: int) -> None:
        super().__init__()
        hidden = max(2 * latent, width // 2)
        self.enc = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, width))

    def forward(self, e: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc(e).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        return self.dec(z), mu, logvar


def train_vae(reps: torch.Tensor, c: LAFConfig, gen: torch.Generator) -> VAE:
    vae = VAE(reps.shape[1], c.latent)
    opt = torch.optim.Adam(vae.parameters(), lr=c.vae_lr)
    for _, idx in zip(range(c.vae_epochs * -(-len(reps) // c.batch_size)), batches(len(reps), c.batch_size, gen)):
        out, mu, logvar = vae(reps[idx])
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
        loss = ((out - reps[idx]).pow(2).sum(1) + c.kl_weight * kl).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return vae.eval().requires_grad_(False)


def bounded_error(vae: VAE, e: torch.Tensor) -> torch.Tensor:
    m = (vae(e, sample=False)[0] - e).pow(2).sum(1)
    return torch.exp(m / (m + 1)).sum()


def alignment(e_r, e0_r, e_f, e0_f, temperature: float) -> torch.Tensor:
    d_r = 1 - F.cosine_similarity(e_r, e0_r, dim=1)
    d_f = 1 - F.cosine_similarity(e_f, e0_f, dim=1)
    return (d_r - torch.logsumexp(d_f / temperature, dim=0)).sum()


@register_supervised("laf")
class LAF(SupervisedUnlearner):
    config_class = LAFConfig

    @property
    def uses_labels(self) -> bool:
        return self.config.repair_epochs > 0

    def unlearn(self, model, data, seed: int = 0):
        c, gen = self.config, torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        original = copy.deepcopy(model).eval().requires_grad_(False)
        with torch.no_grad():
            reps_all = model.features(torch.cat([data.retain_x, data.forget_x]))
            reps_forget = model.features(data.forget_x)
        vae_all, vae_forget = train_vae(reps_all, c, gen), train_vae(reps_forget, c, gen)
        extractor = [p for layer in model.body for p in layer.parameters()]
        opt_ue, opt_ra = torch.optim.Adam(extractor, lr=c.lr_ue), torch.optim.Adam(extractor, lr=c.lr_ra)
        steps = c.epochs * -(-len(data.forget_x) // c.batch_size)
        retain, forget = batches(len(data.retain_x), c.batch_size, gen), batches(len(data.forget_x), c.batch_size, gen)
        for _, r, f in zip(range(steps), retain, forget):
            xr, xf = data.retain_x[r], data.forget_x[f]
            loss_ue = bounded_error(vae_all, model.features(xr)) - bounded_error(vae_forget, model.features(xf))
            opt_ue.zero_grad()
            loss_ue.backward()
            opt_ue.step()
            loss_ra = alignment(model.features(xr), original.features(xr), model.features(xf),
                                original.features(xf), c.temperature)
            opt_ra.zero_grad()
            loss_ra.backward()
            opt_ra.step()
        if c.repair_epochs:
            self._repair(model, data, gen)
        return model.eval()

    def _repair(self, model, data, gen: torch.Generator) -> None:
        """LAF+R: the head alone is fine-tuned on retain labels (forget labels are never read)."""
        c = self.config
        optimise(model, c.repair_lr, steps_for(c.repair_epochs, len(data.retain_x), c.batch_size),
                 lambda r: task_loss(data.kind, model(data.retain_x[r]), data.retain_y[r]),
                 batches(len(data.retain_x), c.batch_size, gen), params=model.head.parameters())
