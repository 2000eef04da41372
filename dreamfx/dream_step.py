"""One dream iteration as a plain forward graph: the model's forward pass plus its input gradient, by hand.

torch's ONNX exporter cannot export autograd (it stops at
``aten.convolution_backward``), so :class:`DreamStep` writes the backward pass of
DreamNet out of operations ONNX and TorchScript have: the gradient of a 3x3
convolution is the transposed convolution with the same weights, batch norm (in
eval mode) is a per-channel scale, ReLU a mask, max pooling routes the
gradient to the first maximum of each window (as torch does), and each
frontend brings its own backward (the mel projection is a matrix product
between two elementwise maps).  The tests check it
against torch autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dreamfx.dream import StepInputs, ascent_update
from dreamfx.models import DreamNet
from dreamfx.spectral import LOG_EPS


def roll_time(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``torch.roll(x, shift, -1)`` for 0 <= shift < T, from a gather the exporters accept."""
    frames = x.shape[-1]
    return torch.cat([x, x], dim=-1).index_select(-1, torch.arange(frames, device=x.device) + (frames - shift))


def unroll_time(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`roll_time`."""
    frames = x.shape[-1]
    return torch.cat([x, x], dim=-1).index_select(-1, torch.arange(frames, device=x.device) + shift)


def batchnorm_scale(bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """Per-channel factor of an eval-mode batch norm (its derivative)."""
    return bn.weight / torch.sqrt(bn.running_var + bn.eps)


def maxpool_backward(x: torch.Tensor, grad: torch.Tensor, pool: nn.MaxPool2d) -> torch.Tensor:
    """Gradient of ``pool(x)`` w.r.t. x (B, C, H, W), given the gradient of the pooled output (B, C, H', W').

    Each window passes its gradient to its first maximum in row-major order
    (argmax's rule and torch's); where windows overlap (musicnn's 4-frame pools
    with stride 2) a sample collects from each window it won; rows and columns
    no window covers get 0.  The windows are read with strided slices and
    written back with a transposed convolution of one-hot kernels (ops ONNX has).
    """
    (kh, kw), (sh, sw) = _pair(pool.kernel_size), _pair(pool.stride)
    b, c, h2, w2 = grad.shape
    candidates = torch.stack([x[..., i:i + sh * (h2 - 1) + 1:sh, j:j + sw * (w2 - 1) + 1:sw]
                              for i in range(kh) for j in range(kw)], dim=2)   # (B, C, kh*kw, H', W')
    positions = torch.arange(kh * kw, device=x.device)
    routed = (candidates.argmax(dim=2, keepdim=True) == positions[:, None, None]).to(grad.dtype) * grad[:, :, None]
    one_hot = torch.eye(kh * kw, dtype=grad.dtype, device=grad.device).reshape(kh * kw, 1, kh, kw)
    full = F.conv_transpose2d(routed.reshape(b * c, kh * kw, h2, w2), one_hot, stride=(sh, sw))
    full = full.reshape(b, c, full.shape[-2], full.shape[-1])
    return F.pad(full, (0, x.shape[-1] - full.shape[-1], 0, x.shape[-2] - full.shape[-2]))


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


class ObjectiveGradient(nn.Module):
    """(objective, d objective / d logmag) of a DreamNet for objectives ending at ``graph_layer``.

    forward(logmag (B, n_bins, T), weights (n,), shift) -> (value (B,), grad (B, n_bins, T)).
    ``graph_layer`` "convK": value = sum_c w_c mean_hw(act_c ** 2); "logits": sum_k w_k logit_k.
    The model sees the window rolled by ``shift`` frames.  Generic over the
    architectures DreamNet's metadata describes: the backward pass walks the
    recorded units (conv, batch norm, ReLU) and pools in reverse.
    """

    def __init__(self, model: DreamNet, graph_layer: str):
        super().__init__()
        if graph_layer not in model.layer_names:
            raise ValueError(f"unknown layer {graph_layer!r}: use one of {', '.join(model.layer_names)}")
        self.model = model
        self.graph_layer = graph_layer
        self.depth = min(model.layer_names.index(graph_layer) + 1, len(model.blocks))

    def forward(self, logmag: torch.Tensor, weights: torch.Tensor,
                shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        rolled = roll_time(logmag, shift)
        x = m.normalize(m.frontend(rolled))
        tape = []  # (module, its input, its output) of every unit and pool, in order
        for i in range(self.depth):
            for unit in m.blocks[i]:
                y = unit(x)
                tape.append((unit, x, y))
                x = y
            pool = m.pools[i]
            if pool is not None and (i < self.depth - 1 or self.graph_layer == "logits"):
                y = pool(x)
                tape.append((pool, x, y))
                x = y
        if self.graph_layer == "logits":
            value, grad = self._logits_backward(x, weights)
        else:
            energy = x.square().mean(dim=(2, 3))                          # (B, C)
            value = energy @ weights
            grad = 2 * x * weights[:, None, None] / (x.shape[-2] * x.shape[-1])
        for module, x_in, y in reversed(tape):
            if isinstance(module, nn.Conv2d):
                grad = F.conv_transpose2d(grad, module.weight, padding=module.padding)
            elif isinstance(module, nn.BatchNorm2d):
                grad = grad * batchnorm_scale(module)[:, None, None]
            elif isinstance(module, nn.ReLU):
                grad = torch.where(y > 0, grad, torch.zeros_like(grad))
            else:
                grad = maxpool_backward(x_in, grad, module)
        grad = grad * batchnorm_scale(m.input_norm)[:, None]            # (B, 1, F, T') -> d/d features
        return value, unroll_time(m.frontend.backward(rolled, grad[:, 0]), shift)

    def _logits_backward(self, act: torch.Tensor, weights: torch.Tensor):
        """Value and gradient w.r.t. the head's input (B, C, H, T') of sum_k w_k logit_k."""
        m = self.model
        logits = m.logits(act)
        value = logits @ weights
        if m.spec.head["kind"] == "dense-over-time":                  # logits = mean over positions of a conv1d
            positions = act.shape[-1] - m.head.weight.shape[-1] + 1
            g_positions = (weights / positions)[None, :, None].expand(act.shape[0], -1, positions)
            return value, F.conv_transpose1d(g_positions, m.head.weight)[:, :, None]
        pooled = act.mean(dim=2)                                          # (B, C, T)
        peak = pooled.amax(dim=2, keepdim=True)
        g_features = weights @ m.head.weight                              # (2C,)
        channels = pooled.shape[1]
        at_peak = (pooled == peak).float()
        g_pooled = (g_features[:channels, None] / pooled.shape[-1]
                    + g_features[channels:, None] * at_peak / at_peak.sum(dim=2, keepdim=True))
        grad = (g_pooled / act.shape[2]).unsqueeze(2).expand_as(act)
        return value, grad


class DreamStep(nn.Module):
    """One dream iteration: StepInputs -> (new delta (B, n_bins, K), objective value (B,)).

    The same arithmetic as the torch backend (window, jitter roll, gradient,
    :func:`~dreamfx.dream.ascent_update`), with the gradient of
    :class:`ObjectiveGradient`, so it exports to TorchScript and ONNX.
    """

    def __init__(self, model: DreamNet, graph_layer: str):
        super().__init__()
        self.gradient = ObjectiveGradient(model, graph_layer)

    def forward(self, context_logmag, magnitude, delta, shift, weights, smooth_freq, smooth_time, step, bound,
                preserve_level):
        inputs = StepInputs(context_logmag, magnitude, delta, shift, weights, smooth_freq, smooth_time, step,
                            bound, preserve_level)
        dreamed = magnitude * torch.exp(delta)
        window = torch.cat([context_logmag, torch.log(dreamed + LOG_EPS)], dim=-1)
        value, grad = self.gradient(window, weights, shift)
        grad_new = grad[..., context_logmag.shape[-1]:]
        grad_delta = grad_new * dreamed / (dreamed + LOG_EPS)
        return ascent_update(inputs, grad_delta), value
