"""Where the dream iterations run: torch (autograd), TorchScript or onnxruntime (exported dream steps).

    backend = open_backend("model.safetensors", "onnxruntime", exporter=step_graph)  # exports the graphs it needs
    backend = open_backend("conv3-44k.onnx")                       # an exported dream step ("auto")
    stft = backend.prepare(44100)
    step = backend.step_function(objective)                        # StepInputs -> (delta, value)

Model files are recognised by their content, never unpickled: safetensors
(weights + metadata), a TorchScript archive holding ``extra/dreamfx.json``, or
an ONNX graph with a ``dreamfx`` metadata entry.  An exported file holds one
dream step (one graph layer, one sample rate); asking it for anything else is a
one-line :class:`~dreamfx.errors.DreamfxError` naming what it was built for.
"""

from __future__ import annotations

import contextlib
import json
import struct
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from dreamfx.dream.ascent import (Objective, StepFunction, StepInputs, TransformDraw, Transforms, ascent_update, dreamed_logmag,
                          first_step_inputs, transformed)
from dreamfx.dream.step import METADATA_KEY, STEP_INPUTS, STEP_OUTPUTS, TORCHSCRIPT_EXTRA
from dreamfx.errors import DreamfxError
from dreamfx.files import SEAL_KEY, seal_intact
from dreamfx.nets.models import SHIPPED_MODELS, DreamNet, ModelSpec, load_model, model_path, read_metadata
from dreamfx.dsp.spectral import LOG_EPS, StftConfig
from dreamfx.nets.surrogate import DREAM_TEMPERATURES

BACKENDS = ("auto", "torch", "torchscript", "onnxruntime")
DEVICES_HELP = "'auto', 'cpu' or 'cuda[:N]'"
MAX_INFLATION = 4                  # a TorchScript export is stored, not compressed: inflated / file size ~ 1


def resolve_device(device: str | torch.device | None) -> torch.device:
    """'auto'/None -> CUDA when torch sees it, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def torch_threads(count: int):
    """Compute with ``count`` torch threads inside the block (onnxruntime sessions made there take the count
    too), and with the caller's count again after it: a render never changes its caller's process."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def check_torch_device(device) -> str:
    """The device string, if it names one torch knows; DreamfxError otherwise."""
    if not isinstance(device, str) or not (device in ("auto", "cpu") or device.startswith("cuda")):
        raise DreamfxError(f"device must be {DEVICES_HELP}, got {device!r}")
    return device


# --- recognising and reading model files ---------------------------------------------------------
def model_format(path: Path) -> str:
    """'safetensors', 'torchscript' or 'onnx', from the file's first bytes; DreamfxError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DreamfxError(f"model file {path} not found: pass an existing .safetensors, .pt or .onnx model, or "
                           f"one of the shipped models ({', '.join(SHIPPED_MODELS)})")
    with open(path, "rb") as f:
        head = f.read(9)
    if not head:
        raise DreamfxError(f"model file {path} is empty: re-export or re-train it")
    if head[:4] == b"PK\x03\x04":
        return "torchscript"
    if len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < path.stat().st_size:
        return "safetensors"
    if head[:1] == b"\x80":
        raise DreamfxError(f"model file {path} looks like a Python pickle: dreamfx never unpickles; use a "
                           "safetensors model or a `dreamfx export` file")
    return "onnx"


def read_torchscript_metadata(path: Path) -> dict:
    """The dreamfx metadata of a TorchScript export, read from the zip without loading any code, after every
    entry's CRC is checked (refusing, before inflating anything, a zip that would inflate far beyond its size)."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            inflated = sum(e.file_size for e in entries)
            if inflated > MAX_INFLATION * path.stat().st_size + 2**20:
                raise DreamfxError(f"model file {path} is a zip that would inflate to {inflated / 2**20:.0f} MiB from "
                                   f"{path.stat().st_size / 2**20:.1f} MiB (a zip bomb?): dreamfx exports are not "
                                   "compressed; re-export it")
            names = [n for n in archive.namelist() if n.endswith(f"/extra/{TORCHSCRIPT_EXTRA}")]
            if not names:
                raise DreamfxError(f"model file {path} is a zip archive without dreamfx metadata (a torch.save "
                                   "pickle?): dreamfx loads only its own `dreamfx export` files")
            damaged = archive.testzip()
            if damaged is not None:
                raise DreamfxError(f"model file {path} is damaged ({damaged} fails its CRC check): re-export it")
            return _parse_metadata(archive.read(names[0]), path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        if isinstance(exc, DreamfxError):
            raise
        raise DreamfxError(f"model file {path} is a damaged zip archive ({exc}): re-export it") from None


def read_onnx_metadata(path: Path):
    """(onnx.ModelProto, dreamfx metadata) of an ONNX export, its seal checked; DreamfxError for anything else."""
    import onnx
    from google.protobuf.message import DecodeError
    try:
        data = path.read_bytes()
        proto = onnx.load_from_string(data)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise DreamfxError(f"model file {path} is not a safetensors, TorchScript or ONNX file dreamfx can read "
                           f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props or not proto.graph.node:
        raise DreamfxError(f"model file {path} is not a dreamfx ONNX export (no '{METADATA_KEY}' metadata): "
                           "export one with `dreamfx export MODEL --format onnx`")
    if SEAL_KEY in props and not seal_intact(data, props[SEAL_KEY]):
        raise DreamfxError(f"model file {path} is damaged (its bytes do not match its seal): re-export it")
    return proto, _parse_metadata(props[METADATA_KEY], path)


def _parse_metadata(raw, path: Path) -> dict:
    try:
        meta = json.loads(raw)
        ModelSpec(meta)
        meta["export"]["what"], meta["export"]["sample_rate"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise DreamfxError(f"model file {path} has damaged dreamfx metadata ({type(exc).__name__}: {exc}): "
                           "re-export it") from None
    return meta


def read_model_metadata(path: Path) -> dict:
    """The metadata of any model file dreamfx reads (safetensors or an export)."""
    kind = model_format(Path(path))
    if kind == "safetensors":
        return read_metadata(path)
    return read_torchscript_metadata(path) if kind == "torchscript" else read_onnx_metadata(path)[1]


def check_dream_step(meta: dict, path: Path) -> None:
    """Refuse exported classifiers (and anything else) where a dream step is needed."""
    what = meta["export"]["what"]
    if what != "dream-step":
        raise DreamfxError(f"model file {path} is a {what} export; dreaming needs a dream step: "
                           "`dreamfx export MODEL --what dream-step --objective ...`")


# --- backends ------------------------------------------------------------------------------------
class TorchBackend:
    """The reference: DreamNet in torch, gradients by autograd (the dream's smooth surrogate rules,
    :mod:`dreamfx.nets.surrogate`), on CUDA when available.

    members: an ensemble, ``(name, network, weight)`` dreaming with ``model`` (weight 1) toward the same tag
    (:meth:`Objective.for_member`): the step follows the weighted mean of the networks' normalised gradients
    (:meth:`gradient`); they must share the model's STFT.
    """

    name = "torch"
    default_objective = None

    def __init__(self, model: DreamNet, device: torch.device, members: list[tuple[str, DreamNet, float]] = ()):
        self.model, self.spec, self.device = model.smooth_gradients(*DREAM_TEMPERATURES).to(device), model.spec, device
        # What the dream differentiates: the model itself, or for a mel-image model the same network fed the
        # log-mel image directly (the engine dreams mel magnitudes, see DreamEngine).
        self.dream_model = mel_image_view(model).to(device) if model.frontend.dream_domain == "mel" else model
        if members and self.dream_model is not model:
            raise DreamfxError("a mel-image model (frontend 'mel') cannot dream in an ensemble: its dream runs on "
                               "the mel image, the others' on STFT bins")
        self.members = [(name, net.smooth_gradients(*DREAM_TEMPERATURES).to(device), float(weight))
                        for name, net, weight in members]

    @property
    def network(self) -> DreamNet | None:
        """The network that dreams STFT bins (what listens to a guide), or None for a mel-image model."""
        return self.model if self.dream_model is self.model else None

    @property
    def mel_filterbank(self) -> torch.Tensor | None:
        """(n_mels, n_bins) at the prepared rate for a mel-image model (the dream's domain), else None."""
        return self.model.frontend.filterbank if self.dream_model is not self.model else None

    def check_objective(self, objective: Objective) -> None:
        """Every objective the model validates is served; an ensemble's members must know it too."""
        for name, net, _ in self.members:
            objective.for_member(self.spec, net.spec, name).validate(net.spec)

    def check_transforms(self, transforms: Transforms) -> None:
        """Autograd takes the gradient through any transforms."""

    def warm_up(self, objective: Objective | None = None, every_layer: bool = True) -> None:
        """Nothing to build: autograd needs no graphs."""

    def prepare(self, sample_rate: int) -> StftConfig:
        stft = self.model.configure(sample_rate)
        for name, net, _ in self.members:
            if net.configure(sample_rate) != stft:
                raise DreamfxError(f"ensemble member {name} analyses audio with {net.stft}, the model with {stft}: "
                                   "an ensemble's networks must share the STFT settings")
        return stft

    def step_function(self, objective: Objective) -> StepFunction:
        """One iteration: :meth:`gradient`, then the ascent step."""
        gradient = self.gradient(objective)

        def step(inputs: StepInputs, draw: TransformDraw | None = None):
            grad, value = gradient(inputs, draw)
            return ascent_update(inputs, grad), value
        return step

    def gradient(self, objective: Objective):
        """(inputs, draw) -> (gradient (B, n_bins, K), objective (B,)) with respect to the delta.

        Alone, the model's objective and its gradient.  In an ensemble, each network's gradient is scaled to
        a mean magnitude of 1 per item (a robust network's gradient is far smaller than a tagger's: summed raw,
        the tagger alone would steer), then weighted: the weighted mean of the networks' normalised gradients,
        and the weighted mean of their objectives.  With a TransformDraw, every network's objective is
        averaged over the draw's transformed copies of the window.
        """
        total = 1.0 + sum(weight for _, _, weight in self.members)
        terms = [(self.dream_model, objective, 1.0 / total)] + [
            (net, objective.for_member(self.spec, net.spec, name), weight / total)
            for name, net, weight in self.members]

        def gradient(inputs: StepInputs, draw: TransformDraw | None = None):
            grad, value = 0.0, 0.0
            with torch.enable_grad():
                delta = inputs.delta.detach().requires_grad_()
                window = torch.cat([inputs.context_logmag, dreamed_logmag(inputs.magnitude, delta)], dim=-1)
                window = torch.roll(window, int(inputs.shift), dims=-1)
                if draw is not None:
                    window = transformed(window, draw)
                for net, part, weight in terms:
                    term = part(net, window)
                    if draw is not None:
                        term = term.reshape(delta.shape[0], -1).mean(dim=1)
                    (term_grad,) = torch.autograd.grad(term.sum(), delta, retain_graph=len(terms) > 1)
                    if len(terms) > 1:
                        term_grad = term_grad / term_grad.abs().mean(dim=(1, 2), keepdim=True).clamp_min(1e-20)
                    grad, value = grad + weight * term_grad, value + weight * term.detach()
            return grad, value
        return gradient

    def evaluate(self, objective: Objective, logmag: torch.Tensor) -> torch.Tensor:
        """Objective values (B,) of windows logmag (B, n_bins, T)."""
        with torch.no_grad():
            return objective(self.model, logmag.to(self.device))


Graph = Callable[[StepInputs], tuple[torch.Tensor, torch.Tensor]]
# (net configured for its rate, graph layer, backend name, device) -> the dream step's graph on that backend
Exporter = Callable[[DreamNet, str, str, torch.device], Graph]


class GraphBackend:
    """Runs exported dream steps, one graph per (graph layer, sample rate).

    ``build(graph_layer, sample_rate)`` returns a graph (StepInputs -> (delta,
    value)): traced / exported from a DreamNet on first use, or the one graph of
    an exported file (``source``), which serves only its own graph layer and
    sample rate.
    """

    members = ()  # an exported step holds one network: no ensemble

    def __init__(self, name: str, spec: ModelSpec, device: torch.device, build: Callable[[str, int], Graph],
                 default_objective: Objective | None = None, source: Path | None = None,
                 network: DreamNet | None = None):
        self.name, self.spec, self.device, self.build = name, spec, device, build
        self.default_objective, self.source = default_objective, source
        self.network = network  # the network the graphs are exported from (None: an exported file)
        self.mel_filterbank = None  # graphs dream on linear bins (a mel-image model runs on torch only)
        self.graphs: dict[tuple[str, int], Graph] = {}
        self.sample_rate: int | None = None

    def check_objective(self, objective: Objective) -> None:
        """DreamfxError when a graph cannot serve ``objective`` (a blend of layers; an exported file's other
        graph layers)."""
        if objective.kind == "layers":
            raise DreamfxError(f"a blend of layers runs on the torch backend only (the {self.name} dream step ends at "
                               "one layer): use backend='torch', or one layer")
        if objective.kind == "guide" and objective.match != "tags":
            raise DreamfxError(f"a guided dream with match {objective.match!r} runs on the torch backend only (the "
                               f"{self.name} dream step serves the 'tags' match): use backend='torch', or "
                               "match='tags'")
        built = self.spec.exported_graph_layer
        if built is not None and objective.graph_layer != built:
            asked = "a class objective (logits)" if objective.graph_layer == "logits" else \
                f"layer {objective.graph_layer!r}"
            raise DreamfxError(f"{self.source} was exported for objectives on {built!r}; the request needs {asked}: "
                               "export one for it with `dreamfx export MODEL --what dream-step ...`")

    def check_transforms(self, transforms: Transforms) -> None:
        if transforms.active:
            raise DreamfxError(f"transforms run on the torch backend only (the {self.name} dream step takes one "
                               "window, untransformed): use backend='torch', or drop the transforms")

    def prepare(self, sample_rate: int) -> StftConfig:
        stft = self.spec.stft_for(sample_rate)
        self.sample_rate = sample_rate
        return stft

    def graph(self, objective: Objective) -> Graph:
        if self.sample_rate is None:
            raise RuntimeError("call prepare(sample_rate) first")
        self.check_objective(objective)
        key = (objective.graph_layer, self.sample_rate)
        if key not in self.graphs:
            self.graphs[key] = self.build(*key)
        return self.graphs[key]

    def step_function(self, objective: Objective) -> StepFunction:
        """The graph for ``objective``; its weights come with the inputs (:meth:`Objective.weights`)."""
        return self.graph(objective)

    def warm_up(self, objective: Objective | None = None, every_layer: bool = True) -> None:
        """Build ``objective``'s graph and, with ``every_layer``, every graph this backend can serve at the
        prepared sample rate, so that switching layers or targets while streaming (MIDI) never waits for an
        export (9-15 s each on 2 cores, cached on disk afterwards)."""
        built = self.spec.exported_graph_layer
        for layer in ([built] if built else self.spec.layer_names) if every_layer else ():
            self.graph(Objective.on_graph_layer(self.spec, layer))
        if objective is not None:
            self.graph(objective)

    def evaluate(self, objective: Objective, logmag: torch.Tensor) -> torch.Tensor:
        """Objective values (B,) of windows logmag (B, n_bins, T), from the step graph's value output."""
        logmag = logmag.to(self.device)
        last = (torch.exp(logmag[..., -1:]) - LOG_EPS).clamp_min(0)  # the graph takes the new frames linear
        inputs = first_step_inputs(logmag[..., :-1], last, objective.weights(self.spec), step=0.0, max_gain_db=0.0)
        return self.graph(objective)(inputs)[1]


def torchscript_graph(module) -> Graph:
    return lambda inputs: tuple(module(*inputs))


class OnnxGraph:
    """An onnxruntime session behind the Graph signature (numpy in and out, torch tensors outside)."""

    def __init__(self, model_bytes: bytes, device: torch.device, source: str, n_bins: int):
        import onnxruntime as ort
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # Idle pool threads must not spin: torch's STFT and overlap-add run on the same cores between steps.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.intra_op_num_threads = torch.get_num_threads()  # as many as torch's, which the caller may set
        try:
            self.session = ort.InferenceSession(model_bytes, options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise DreamfxError(f"{source}: onnxruntime cannot load the graph ({str(exc).splitlines()[0]}): "
                               "re-export it") from None
        names = tuple(i.name for i in self.session.get_inputs())
        outputs = tuple(o.name for o in self.session.get_outputs())
        if names != STEP_INPUTS or outputs != STEP_OUTPUTS:
            raise DreamfxError(f"{source}: the graph takes ({', '.join(names)}) -> ({', '.join(outputs)}); a dream "
                               f"step takes ({', '.join(STEP_INPUTS)}) -> ({', '.join(STEP_OUTPUTS)}): re-export it")
        graph_bins = self.session.get_inputs()[0].shape[1]
        if graph_bins != n_bins:
            raise DreamfxError(f"{source}: the graph takes {graph_bins} STFT bins, its metadata's STFT settings give "
                               f"{n_bins}: re-export it")
        self.device = device

    def __call__(self, inputs: StepInputs):
        delta, value = self.session.run(None, numpy_inputs(inputs))
        return torch.from_numpy(delta).to(self.device), torch.from_numpy(value).to(self.device)


def open_backend(model: str | Path | DreamNet | None = None, backend: str = "auto", device: str = "auto",
                 ensemble: dict | None = None, exporter: Exporter | None = None) -> TorchBackend | GraphBackend:
    """A backend for ``model`` (a DreamNet, a model file, or None for the bundled default).

    backend "auto": torch for safetensors models, otherwise the file's own kind.  ensemble: ``{model: weight}``
    of networks (names or safetensors files) dreaming with it, the model's own weight being 1 (torch only).
    exporter: how a safetensors model's dream step becomes a TorchScript or ONNX graph when such a backend is
    asked for it (:func:`dreamfx.export.graphs.step_graph`; the engine does not export, the layer above does).
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
    if isinstance(model, DreamNet):
        kind, path = "safetensors", None
    else:
        path = model_path(model)
        kind = model_format(path)
    if ensemble and kind != "safetensors":
        raise DreamfxError(f"{path} is an exported {kind} dream step, which holds one network: an ensemble dreams "
                           "on the torch backend only; give the safetensors model, or drop the ensemble")
    if kind == "safetensors":
        net = model if isinstance(model, DreamNet) else load_model(path)
        if ensemble:
            return TorchBackend(net, torch_device, [(str(name), load_model(model_path(name)), weight)
                                                    for name, weight in ensemble.items()])
        return _backend_from_net(net, backend, torch_device, exporter)
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


def _backend_from_net(net: DreamNet, backend: str, device: torch.device, exporter: Exporter | None):
    if backend in ("auto", "torch"):
        return TorchBackend(net, device)
    if net.frontend.dream_domain == "mel":
        raise DreamfxError(f"a mel-image model (frontend 'mel') dreams on the mel image, which only the torch "
                           f"backend does, not {backend!r}: use --backend torch")
    if exporter is None:
        raise DreamfxError(f"backend {backend!r} runs an exported dream step: export the model first (dreamfx "
                           "export), or open it through DreamEffect, which exports on demand")

    def build(graph_layer: str, sample_rate: int) -> Graph:
        net.configure(sample_rate)
        return exporter(net, graph_layer, backend, device)
    return GraphBackend(backend, net.spec, device, build, network=net)


def mel_image_view(model: DreamNet) -> DreamNet:
    """The same network and weights with the log-mel image as its input (frontend "features")."""
    meta = {**model.meta, "frontend": {"kind": "features", "n_features": model.frontend.n_features}}
    view = DreamNet(meta)
    view.load_state_dict(model.state_dict())
    return view.eval().requires_grad_(False).smooth_gradients(*model.gradient_temperatures)


def numpy_inputs(inputs: StepInputs) -> dict[str, np.ndarray]:
    """StepInputs as the feed of an ONNX dream step (for tools and tests)."""
    return {name: value.detach().cpu().numpy() for name, value in zip(STEP_INPUTS, inputs)}
