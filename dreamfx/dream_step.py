"""One dream iteration as a plain forward graph: the model's forward pass plus its input gradient, by hand.

torch's ONNX exporter cannot export autograd (it stops at
``aten.convolution_backward``), so :class:`DreamStep` writes the backward pass of
DreamNet out of operations ONNX and TorchScript have: the gradient of a 3x3
convolution is the transposed convolution with the same weights, batch norm (in
eval mode) is a per-channel scale, ReLU a mask, 2x2 max pooling routes the
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


def maxpool2x2_backward(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Gradient of ``max_pool2d(x, 2)`` w.r.t. x (B, C, H, W), given the gradient of the pooled output.

    Each 2x2 window passes its gradient to its first maximum in row-major
    order (argmax's rule and torch's); odd trailing rows/columns (dropped by the
    pool) get 0.
    """
    b, c, h2, w2 = grad.shape
    windows = x[..., :2 * h2, :2 * w2].reshape(b, c, h2, 2, w2, 2).transpose(3, 4).reshape(b, c, h2, w2, 4)
    first = windows.argmax(dim=-1, keepdim=True)
    routed = (first == torch.arange(4, device=x.device)).to(grad.dtype) * grad[..., None]
    full = routed.reshape(b, c, h2, w2, 2, 2).transpose(3, 4).reshape(b, c, 2 * h2, 2 * w2)
    return F.pad(full, (0, x.shape[-1] - 2 * w2, 0, x.shape[-2] - 2 * h2))


class ObjectiveGradient(nn.Module):
    """(objective, d objective / d logmag) of a DreamNet for objectives ending at ``graph_layer``.

    forward(logmag (B, n_bins, T), weights (n,), shift) -> (value (B,), grad (B, n_bins, T)).
    ``graph_layer`` "convK": value = sum_c w_c mean_hw(act_c ** 2); "logits": sum_k w_k logit_k.
    The model sees the window rolled by ``shift`` frames; the frontend works frame
    by frame, so the roll is applied to its (16x smaller) output instead of the STFT.
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
        x = roll_time(m.input_norm(m.frontend(logmag)), shift).unsqueeze(1)
        saved = []  # (block, unit, relu output) of every conv unit
        for i in range(self.depth):
            for unit in range(len(m.blocks[i]) // 3):
                conv, bn = m.blocks[i][3 * unit], m.blocks[i][3 * unit + 1]
                x = torch.relu(bn(conv(x)))
                saved.append((i, unit, x))
            if i < self.depth - 1:
                x = m.pool(x)
        act = x
        if self.graph_layer == "logits":
            value, grad = self._logits_backward(act, weights)
        else:
            energy = act.square().mean(dim=(2, 3))                        # (B, C)
            value = energy @ weights
            grad = 2 * act * weights[:, None, None] / (act.shape[-2] * act.shape[-1])
        units_per_block = len(m.blocks[0]) // 3
        for i, unit, act in reversed(saved):
            conv, bn = m.blocks[i][3 * unit], m.blocks[i][3 * unit + 1]
            if i < self.depth - 1 and unit == units_per_block - 1:  # the block's output was pooled
                grad = maxpool2x2_backward(act, grad)
            grad = torch.where(act > 0, grad, torch.zeros_like(grad)) * batchnorm_scale(bn)[:, None, None]
            grad = F.conv_transpose2d(grad, conv.weight, padding=1)
        grad = unroll_time(grad[:, 0], shift) * batchnorm_scale(m.input_norm)[:, None]  # d/d features
        return value, m.frontend.backward(logmag, grad)

    def _logits_backward(self, act: torch.Tensor, weights: torch.Tensor):
        """Value and gradient w.r.t. the last conv activation (B, C, H, T) of sum_k w_k logit_k."""
        m = self.model
        pooled = act.mean(dim=2)                                          # (B, C, T)
        peak = pooled.amax(dim=2, keepdim=True)
        logits = m.head(torch.cat([pooled.mean(dim=2), peak[..., 0]], dim=1))
        value = logits @ weights
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
