"""A network's dream step as a graph a backend runs: traced for TorchScript or exported to ONNX, on demand.

    open_backend("model.safetensors", "onnxruntime", exporter=step_graph)   # dreamfx.engine.backends

DreamEffect passes :func:`step_graph` to the engine, importing this module only when a safetensors model is asked
for a TorchScript or onnxruntime backend: opening an exported file never imports the exporter.
"""

from __future__ import annotations

import torch

from dreamfx.engine.backends import Graph, OnnxGraph, torchscript_graph
from dreamfx.export.exporters import onnx_dream_step, traced_dream_step
from dreamfx.nets.models import DreamNet


def step_graph(net: DreamNet, graph_layer: str, backend: str, device: torch.device) -> Graph:
    """``net``'s dream step for objectives on ``graph_layer``, at its configured rate, on ``backend``
    ("torchscript" or "onnxruntime")."""
    if backend == "torchscript":
        return torchscript_graph(traced_dream_step(net, graph_layer, device))
    return OnnxGraph(onnx_dream_step(net, graph_layer), device, f"dream step {graph_layer}", net.stft.n_bins)
