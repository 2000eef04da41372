"""Objectives and the dreaming iterations (gradient ascent on the log-magnitude).

The dream changes only the log-magnitude of the newest frames of a window; the
phase and the context frames are left alone.  The update is bounded twice, as
the design notes require: each step is ``step * clip(g / mean|g|, +-3)`` and the
accumulated change is clipped to ``+- max_gain_db``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dreamfx.errors import DreamfxError
from dreamfx.models import DreamNet
from dreamfx.spectral import LOG_EPS

OBJECTIVE_KINDS = ("layer", "channel", "class")
STEP_CLIP = 3.0  # per-element bound of the normalised gradient


@dataclass(frozen=True)
class Objective:
    """What the dream maximises.

    kind ``"layer"``: mean squared activation of ``layer``;
    ``"channel"``: mean squared activation of one ``channel`` of ``layer``;
    ``"class"``: the logit of class ``target``.
    """

    kind: str = "layer"
    layer: str = "conv3"
    channel: int = 0
    target: str | None = None

    def validate(self, model: DreamNet) -> None:
        """Raise DreamfxError naming the bad field and what is allowed."""
        if self.kind not in OBJECTIVE_KINDS:
            raise DreamfxError(f"unknown objective {self.kind!r}: use one of {', '.join(OBJECTIVE_KINDS)}")
        if self.kind == "class":
            if self.target not in model.class_names:
                raise DreamfxError(f"unknown target class {self.target!r}: this model knows "
                                   f"{', '.join(model.class_names)}")
            return
        conv_layers = model.layer_names[:-1]
        if self.layer not in conv_layers:
            raise DreamfxError(f"unknown layer {self.layer!r}: use one of {', '.join(conv_layers)} "
                               "(or objective='class' with a target)")
        if self.kind == "channel":
            n = model.meta["channels"][conv_layers.index(self.layer)]
            if not 0 <= self.channel < n:
                raise DreamfxError(f"channel {self.channel} is out of range for layer {self.layer!r}: use 0..{n - 1}")

    @property
    def is_energy(self) -> bool:
        """True when the objective is a positive energy (compare by ratio), False for logits (by difference)."""
        return self.kind != "class"

    def __call__(self, model: DreamNet, logmag: torch.Tensor) -> torch.Tensor:
        """Objective per batch item: logmag (B, n_bins, T) -> (B,)."""
        if self.kind == "class":
            return model(logmag)[:, model.class_names.index(self.target)]
        act = model.activations(logmag, until=self.layer)[self.layer]
        if self.kind == "channel":
            act = act[:, self.channel:self.channel + 1]
        return act.square().mean(dim=(1, 2, 3))

    def gain(self, before: float, after: float) -> float:
        """Log-gain for energies (ln after/before), plain difference for logits."""
        return float(np.log(after / before)) if self.is_energy else after - before


def dreamed_logmag(magnitude: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Log-magnitude the model sees after the dream's change ``delta`` (natural-log units)."""
    return torch.log(magnitude * torch.exp(delta) + LOG_EPS)


def smooth(grad: torch.Tensor, bins: int, frames: int) -> torch.Tensor:
    """Box-average (B, n_bins, T) over +-``bins`` bins and +-``frames`` frames (edges zero-padded)."""
    if not bins and not frames:
        return grad
    kernel = torch.full((1, 1, 2 * bins + 1, 2 * frames + 1), 1.0 / ((2 * bins + 1) * (2 * frames + 1)),
                        dtype=grad.dtype, device=grad.device)
    return F.conv2d(grad[:, None], kernel, padding=(bins, frames))[:, 0]


def dream(model: DreamNet, objective: Objective, magnitude: torch.Tensor, n_new: int, *, iterations: int,
          step: float, max_gain_db: float, jitter: int, rng: np.random.Generator, smooth_bins: int = 0,
          smooth_frames: int = 0, preserve_level: bool = False) -> torch.Tensor:
    """Gradient ascent on the log-magnitude of the last ``n_new`` frames.

    magnitude: (B, n_bins, T) linear magnitudes of context + new frames.
    Returns delta (B, n_bins, n_new), the change of natural-log magnitude.

    jitter: roll the window by a random number of frames (|shift| <= jitter,
    drawn from ``rng``) each iteration.  smooth_bins / smooth_frames: average
    the gradient over that neighbourhood; smooth changes are closer to a
    consistent STFT and survive resynthesis better.  preserve_level: rescale
    every frame so its energy stays that of the input (a timbre change, not a
    level change).
    """
    context = magnitude[..., :-n_new]
    new = magnitude[..., -n_new:]
    energy = new.square().sum(dim=1, keepdim=True).clamp_min(1e-20)
    bound = max_gain_db / 20 * np.log(10)
    delta = torch.zeros_like(new, requires_grad=True)
    for _ in range(iterations):
        window = torch.cat([torch.log(context + LOG_EPS), dreamed_logmag(new, delta)], dim=-1)
        shift = int(rng.integers(-jitter, jitter + 1)) if jitter else 0
        if shift:
            window = torch.roll(window, shift, dims=-1)
        (grad,) = torch.autograd.grad(objective(model, window).sum(), delta)
        with torch.no_grad():
            grad = smooth(grad, smooth_bins, smooth_frames)
            scale = grad.abs().mean(dim=(1, 2), keepdim=True).clamp_min(1e-20)
            delta += step * (grad / scale).clamp(-STEP_CLIP, STEP_CLIP)
            delta.clamp_(-bound, bound)
            if preserve_level:
                dreamed_energy = (new.square() * torch.exp(2 * delta)).sum(dim=1, keepdim=True)
                delta -= 0.5 * torch.log(dreamed_energy.clamp_min(1e-20) / energy)
    return delta.detach()
