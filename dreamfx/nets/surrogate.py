"""Smooth surrogate gradients: the dream's backward pass through ReLU and max, without jumps.

A ReLU network's input gradient is piecewise constant: where a ReLU's input or
two candidates of a max cross, a mask or a routing flips and the gradient
jumps.  A rounding difference (another backend, another file encoding, 1e-7
of noise) flips some of them, and the dream's iterations grow the jump into an
audible difference (the default preset's output moved by -30 dB under 1e-7 of
input noise; BENCHMARKS.md).  So the dream differentiates a smoothed network:
the forward values stay exact, but backward a ReLU passes
``grad * sigmoid(pre / T_relu)`` and every max (a pooling window, the head's
maximum over time) shares its gradient by ``softmax(values / T_max)``.  The
temperatures are in units of the activations, which batch norm keeps near 1;
0 is the exact gradient (training).  Autograd (the torch backend, through the Functions here)
and the hand-written backward of the exported dream steps
(:mod:`dreamfx.dream.step`) call the same rules.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# The dream's (T_relu, T_max), chosen by benchmarks/smoothness.py: the routing of max pooling is what flips most
# (a sharper T_max leaves the class-target and tagger presets at 14-50 dB of perturbation SNR).
DREAM_TEMPERATURES = (0.1, 1.0)


def relu_backward(pre: torch.Tensor, grad: torch.Tensor, temperature: float) -> torch.Tensor:
    """Gradient through a ReLU w.r.t. its input ``pre``: ``grad * sigmoid(pre / T)``; T = 0: ``grad * (pre > 0)``."""
    if temperature > 0:
        return grad * torch.sigmoid(pre / temperature)
    return torch.where(pre > 0, grad, torch.zeros_like(grad))


def max_routing(values: torch.Tensor, dim: int, temperature: float, split_ties: bool = False) -> torch.Tensor:
    """Weights (shape of ``values``, summing to 1 along ``dim`` >= 0) that share a max's gradient among its
    candidates: ``softmax(values / T)``.  T = 0 is the exact rule: one-hot at the first maximum (max pooling,
    as torch routes), or split evenly among tied maxima (``split_ties``, as torch's amax)."""
    if temperature > 0:
        return torch.softmax(values / temperature, dim=dim)
    if split_ties:
        at_peak = (values == values.amax(dim=dim, keepdim=True)).to(values.dtype)
        return at_peak / at_peak.sum(dim=dim, keepdim=True)
    positions = torch.arange(values.shape[dim], device=values.device).reshape([-1] + [1] * (values.dim() - dim - 1))
    return (values.argmax(dim=dim, keepdim=True) == positions).to(values.dtype)


def maxpool_backward(x: torch.Tensor, grad: torch.Tensor, pool: nn.MaxPool2d, temperature: float) -> torch.Tensor:
    """Gradient of ``pool(x)`` w.r.t. x (B, C, H, W), given the gradient of the pooled output (B, C, H', W').

    Each window shares its gradient among its samples by :func:`max_routing`;
    where windows overlap (musicnn's 4-frame pools with stride 2) a sample
    collects from every window it belongs to; rows and columns no window
    covers get 0.  The windows are read with strided slices and written back
    with a transposed convolution of one-hot kernels (ops ONNX has).
    """
    (kh, kw), (sh, sw) = _pair(pool.kernel_size), _pair(pool.stride)
    b, c, h2, w2 = grad.shape
    candidates = torch.stack([x[..., i:i + sh * (h2 - 1) + 1:sh, j:j + sw * (w2 - 1) + 1:sw]
                              for i in range(kh) for j in range(kw)], dim=2)   # (B, C, kh*kw, H', W')
    routed = max_routing(candidates, 2, temperature) * grad[:, :, None]
    one_hot = torch.eye(kh * kw, dtype=grad.dtype, device=grad.device).reshape(kh * kw, 1, kh, kw)
    full = F.conv_transpose2d(routed.reshape(b * c, kh * kw, h2, w2), one_hot, stride=(sh, sw))
    full = full.reshape(b, c, full.shape[-2], full.shape[-1])
    return F.pad(full, (0, x.shape[-1] - full.shape[-1], 0, x.shape[-2] - full.shape[-2]))


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


class _SmoothReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, temperature):
        ctx.save_for_backward(x)
        ctx.temperature = temperature
        return F.relu(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return relu_backward(x, grad, ctx.temperature), None


class _SmoothMaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, pool, temperature):
        ctx.save_for_backward(x)
        ctx.pool, ctx.temperature = pool, temperature
        return F.max_pool2d(x, pool.kernel_size, pool.stride)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return maxpool_backward(x, grad, ctx.pool, ctx.temperature), None, None


class _SmoothPeak(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, temperature):
        ctx.save_for_backward(x)
        ctx.temperature = temperature
        return x.amax(dim=2)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad.unsqueeze(2) * max_routing(x, 2, ctx.temperature, split_ties=True), None


class SurrogateReLU(nn.ReLU):
    """nn.ReLU whose backward is :func:`relu_backward` at ``temperature`` (0: exact, plain ReLU)."""

    temperature = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SmoothReLU.apply(x, self.temperature) if self.temperature > 0 and torch.is_grad_enabled() \
            else F.relu(x)


class SurrogateMaxPool2d(nn.MaxPool2d):
    """nn.MaxPool2d whose backward is :func:`maxpool_backward` at ``temperature`` (0: exact, plain pooling)."""

    temperature = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SmoothMaxPool.apply(x, self, self.temperature) if self.temperature > 0 and torch.is_grad_enabled() \
            else super().forward(x)


def peak_over_time(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """``x.amax(dim=2)`` of (B, C, T), its gradient routed by :func:`max_routing` at ``temperature``."""
    return _SmoothPeak.apply(x, temperature) if temperature > 0 and torch.is_grad_enabled() else x.amax(dim=2)
