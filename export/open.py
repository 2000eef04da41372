"""Open the backend a dream runs on: a network on torch, or its dream step exported on the fly (TorchScript,
onnxruntime), or a dream step exported before (a .pt or .onnx file).

    backend = open_backend("model.safetensors", "onnxruntime")   # exports the step graphs it needs
    backend = open_backend("conv3-44k.onnx")                       # an exported dream step ("auto")

It sits above the engine (dreamfx.engine.backends runs a backend) because opening one may export.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dreamfx.dream.ascent import Objective
from dreamfx.engine.backends import (BACKENDS, Graph, GraphBackend, OnnxGraph, TorchBackend, check_dream_step,
                                     check_torch_device, model_format, read_onnx_metadata, read_torchscript_metadata,
                                     resolve_device, torchscript_graph)
from dreamfx.errors import DreamfxError
from dreamfx.export.exporters import onnx_dream_step, traced_dream_step
from dreamfx.nets.models import DreamNet, ModelSpec, load_model, model_path


def open_backend(model: str | Path | DreamNet | None = None, backend: str = "auto",
                 device: str = "auto", ensemble: dict | None = None) -> TorchBackend | GraphBackend:
    """A backend for ``model`` (a DreamNet, a model file, or None for the bundled default).

    backend "auto": torch for safetensors models, otherwise the file's own kind.  ensemble: ``{model: weight}``
    of networks (names or safetensors files) dreaming with it, the model's own weight being 1 (torch only).
    """
    if backend not in BACKENDS:
        raise DreamfxError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    torch_device = resolve_device(check_torch_device(device))
    if ensemble is not None and not isinstance(ensemble, dict):
        raise DreamfxError(f"ensemble must be a table of model: weight, got {ensemble!r}: e.g. "
                           "ensemble = {\"tags-robust\" = 1.0}")
    if ensemble:
        if backend not in ("auto", "torch"):
            raise DreamfxError(f"an ensemble dreams on the torch backend only, not {backend!r} (an exported step "
                               "holds one network): use backend='torch', or drop the ensemble")
        for name, weight in ensemble.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < float("inf"):
                raise DreamfxError(f"ensemble weight {weight!r} of {name!r} must be a number > 0")
        net = model if isinstance(model, DreamNet) else load_model(model_path(model))
        return TorchBackend(net, torch_device, [(str(name), load_model(model_path(name)), weight)
                                                for name, weight in ensemble.items()])
    if isinstance(model, DreamNet):
        kind, path = "safetensors", None
    else:
        path = model_path(model)
        kind = model_format(path)
    if kind == "safetensors":
        net = model if isinstance(model, DreamNet) else load_model(path)
        return _backend_from_net(net, backend, torch_device)
    expected = {"torchscript": "torchscript", "onnx": "onnxruntime"}[kind]
    if backend not in ("auto", expected):
        raise DreamfxError(f"{path} is a {kind} export, which runs on backend {expected!r}, not {backend!r}: "
                           f"pass --backend {expected} (or auto), or give the safetensors model instead")
    if kind == "torchscript":
        meta = read_torchscript_metadata(path)
        check_dream_step(meta, path)
        try:
            module = torch.jit.load(str(path), map_location=torch_device)
        except Exception as exc:  # torch.jit raises RuntimeError and friends for damaged archives
            raise DreamfxError(f"model file {path} is a damaged TorchScript archive ({str(exc).splitlines()[0]}): "
                               "re-export it") from None
        graph = torchscript_graph(module)
    else:
        proto, meta = read_onnx_metadata(path)
        check_dream_step(meta, path)
        n_bins = ModelSpec(meta).stft_for(meta["export"]["sample_rate"]).n_bins
        graph = OnnxGraph(proto.SerializeToString(), torch_device, str(path), n_bins)
    objective = Objective(**meta["export"]["objective"])
    return GraphBackend(expected, ModelSpec(meta), torch_device, lambda *_: graph, objective, path)


def _backend_from_net(net: DreamNet, backend: str, device: torch.device):
    if backend in ("auto", "torch"):
        return TorchBackend(net, device)
    if net.frontend.dream_domain == "mel":
        raise DreamfxError(f"a mel-image model (frontend 'mel') dreams on the mel image, which only the torch "
                           f"backend does, not {backend!r}: use --backend torch")

    def build(graph_layer: str, sample_rate: int) -> Graph:
        net.configure(sample_rate)
        if backend == "torchscript":
            return torchscript_graph(traced_dream_step(net, graph_layer, device))
        return OnnxGraph(onnx_dream_step(net, graph_layer), device, f"dream step {graph_layer}", net.stft.n_bins)
    return GraphBackend(backend, net.spec, device, build)
