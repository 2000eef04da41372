"""One dream iteration as a plain forward graph: the model's forward pass plus its input gradient, by hand.

torch's ONNX exporter cannot export autograd (it stops at
``aten.convolution_backward``), so :class:`DreamStep` writes the backward pass of
DreamNet out of operations ONNX and TorchScript have: the gradient of a 3x3
convolution is the transposed convolution with the same weights, batch norm (in
eval mode) is a per-channel scale, ReLU and max pooling follow the model's
smooth surrogate rules (:mod:`dreamfx.nets.surrogate`, shared with autograd), and
each frontend brings its own backward (the mel projection is a matrix product
between two elementwise maps).  The tests check it against torch autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dreamfx.dream.ascent import StepInputs, ascent_update
from dreamfx.dream.guide import GUIDE_TAGS_GRAPH, tags_match
from dreamfx.nets.models import DreamNet
from dreamfx.dsp.spectral import LOG_EPS
from dreamfx.nets.surrogate import DREAM_TEMPERATURES, max_routing, maxpool_backward, relu_backward

# The interface of an exported dream step: what the graph takes and gives, and where its metadata is kept.
STEP_INPUTS = StepInputs._fields
STEP_OUTPUTS = ("new_delta", "objective")
METADATA_KEY = "dreamfx"            # ONNX metadata_props key / TorchScript extra file stem
TORCHSCRIPT_EXTRA = "dreamfx.json"


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


class ObjectiveGradient(nn.Module):
    """(objective, d objective / d logmag) of a DreamNet for objectives ending at ``graph_layer``.

    forward(logmag (B, n_bins, T), weights (n,), shift) -> (value (B,), grad (B, n_bins, T)).
    ``graph_layer`` "convK": value = sum_c w_c mean_hw(act_c ** 2); "logits": sum_k w_k logit_k;
    "guide-tags": a guided dream's "tags" match with the guide's profile ``weights``
    (:func:`~dreamfx.dream.guide.tags_match`).
    The model sees the window rolled by ``shift`` frames.  Generic over the
    architectures DreamNet's metadata describes: the backward pass walks the
    recorded units (conv, batch norm, ReLU) and pools in reverse, at the
    model's gradient temperatures (:meth:`DreamNet.smooth_gradients`).
    """

    def __init__(self, model: DreamNet, graph_layer: str):
        super().__init__()
        if graph_layer not in (*model.layer_names, GUIDE_TAGS_GRAPH):
            raise ValueError(f"unknown layer {graph_layer!r}: use one of {', '.join(model.layer_names)}")
        self.model = model
        self.graph_layer = graph_layer
        self.to_logits = graph_layer in ("logits", GUIDE_TAGS_GRAPH)
        self.depth = len(model.blocks) if self.to_logits else model.layer_names.index(graph_layer) + 1

    def forward(self, logmag: torch.Tensor, weights: torch.Tensor,
                shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        rolled = roll_time(logmag, shift)
        x = m.normalize(m.frontend(rolled))
        tape = []  # (module, its input) of every unit and pool, in order
        for i in range(self.depth):
            for unit in m.blocks[i]:
                tape.append((unit, x))
                x = unit(x)
            pool = m.pools[i]
            if pool is not None and (i < self.depth - 1 or self.to_logits):
                tape.append((pool, x))
                x = pool(x)
        if self.to_logits:
            logits = m.logits(x)
            if self.graph_layer == GUIDE_TAGS_GRAPH:
                value, g_logits = tags_match(logits, weights, m.spec.tagging)
            else:
                value, g_logits = logits @ weights, weights.expand_as(logits)
            grad = self._head_backward(x, g_logits)
        else:
            energy = x.square().mean(dim=(2, 3))                          # (B, C)
            value = energy @ weights
            grad = 2 * x * weights[:, None, None] / (x.shape[-2] * x.shape[-1])
        for module, x_in in reversed(tape):
            if isinstance(module, nn.Conv2d):
                grad = F.conv_transpose2d(grad, module.weight, padding=module.padding)
            elif isinstance(module, nn.BatchNorm2d):
                grad = grad * batchnorm_scale(module)[:, None, None]
            elif isinstance(module, nn.ReLU):
                grad = relu_backward(x_in, grad, module.temperature)
            else:
                grad = maxpool_backward(x_in, grad, module, module.temperature)
        grad = grad * batchnorm_scale(m.input_norm)[:, None]            # (B, 1, F, T') -> d/d features
        return value, unroll_time(m.frontend.backward(rolled, grad[:, 0]), shift)

    def _head_backward(self, act: torch.Tensor, g_logits: torch.Tensor) -> torch.Tensor:
        """The gradient w.r.t. the head's input (B, C, H, T') from the gradient w.r.t. the logits (B, n)."""
        m = self.model
        if m.spec.head["kind"] == "dense-over-time":                  # logits = mean over positions of a conv1d
            positions = act.shape[-1] - m.head.weight.shape[-1] + 1
            g_positions = (g_logits / positions)[:, :, None].expand(-1, -1, positions)
            return F.conv_transpose1d(g_positions, m.head.weight)[:, :, None]
        pooled = act.mean(dim=2)                                          # (B, C, T)
        g_features = g_logits @ m.head.weight                             # (B, 2C)
        channels = pooled.shape[1]
        g_pooled = (g_features[:, :channels, None] / pooled.shape[-1]
                    + g_features[:, channels:, None] * max_routing(pooled, 2, m.gradient_temperatures[1],
                                                                   split_ties=True))
        return (g_pooled / act.shape[2]).unsqueeze(2).expand_as(act)


class DreamStep(nn.Module):
    """One dream iteration: StepInputs -> (new delta (B, n_bins, K), objective value (B,)).

    The same arithmetic as the torch backend (window, jitter roll, gradient,
    :func:`~dreamfx.dream.ascent.ascent_update`), with the gradient of
    :class:`ObjectiveGradient`, so it exports to TorchScript and ONNX.  Sets the model's gradient temperatures
    to ``temperatures`` (the dream's, as the torch backend does).
    """

    def __init__(self, model: DreamNet, graph_layer: str, temperatures: tuple[float, float] = DREAM_TEMPERATURES):
        super().__init__()
        self.gradient = ObjectiveGradient(model.smooth_gradients(*temperatures), graph_layer)

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
