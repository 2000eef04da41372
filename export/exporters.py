"""Export a DreamNet's classifier or dream step to TorchScript or ONNX, metadata inside.

Two graphs can be exported, each for one sample rate (the mel filterbank of
that rate is a constant inside):

- ``classifier``: logmag (batch, n_bins, frames) -> logits (batch, n_classes);
  dynamic batch and time axes.
- ``dream-step``: one dream iteration, :class:`~dreamfx.dream.ascent.StepInputs` ->
  (new_delta, objective), with the analytic input gradient of
  :class:`~dreamfx.dream.step.DreamStep`; dynamic batch, context and chunk axes.
  The graph serves every objective on its graph layer (a layer's energy or one
  of its channels; for "logits", any class or blend of classes), chosen by the
  ``weights`` input.

The metadata (the model's own JSON plus an ``export`` record: what, format,
sample rate, graph layer, objective, dreamfx version) is stored as the ONNX
``metadata_props`` entry ``dreamfx`` (with a few flat entries for other tools)
or the TorchScript extra file ``dreamfx.json``.  Files are written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

import dreamfx
from dreamfx.dream import ascent as dream_ascent, step as dream_step
from dreamfx.dsp import frontends
from dreamfx.nets import models, surrogate
from dreamfx.dream.ascent import Objective, StepInputs, first_step_inputs
from dreamfx.dream.step import METADATA_KEY, STEP_INPUTS, STEP_OUTPUTS, TORCHSCRIPT_EXTRA, DreamStep
from dreamfx.errors import DreamfxError
from dreamfx.files import SEAL_KEY, UNSEALED, atomic_path, seal
from dreamfx.nets.models import DreamNet
from dreamfx.dsp.spectral import LOG_EPS
from dreamfx.nets.surrogate import DREAM_TEMPERATURES

FORMATS = ("torchscript", "onnx")
WHATS = ("classifier", "dream-step")


class Classifier(nn.Module):
    """logmag (B, n_bins, T) -> logits (B, n_classes): the DreamNet forward pass in eval mode."""

    def __init__(self, model: DreamNet):
        super().__init__()
        self.model = model

    def forward(self, logmag: torch.Tensor) -> torch.Tensor:
        return self.model(logmag)


def example_step_inputs(model: DreamNet, objective: Objective, batch: int = 1) -> StepInputs:
    """Plausible StepInputs at the model's configured sample rate (random music-like magnitudes), the model's
    own window (chunk and context frames)."""
    generator = torch.Generator().manual_seed(0)
    chunk, context = model.spec.default_window
    magnitude = torch.rand(batch, model.stft.n_bins, context + chunk, generator=generator) ** 4 * 0.1
    inputs = first_step_inputs(torch.log(magnitude[..., :context] + LOG_EPS), magnitude[..., context:],
                               objective.weights(model.spec), step=0.1, max_gain_db=12.0, smooth_bins=2,
                               smooth_frames=1, preserve_level=True)
    return inputs._replace(delta=0.1 * torch.randn(batch, model.stft.n_bins, chunk, generator=generator),
                           shift=torch.tensor(3))


def traced_dream_step(model: DreamNet, graph_layer: str, device: torch.device | str = "cpu"):
    """A TorchScript DreamStep for ``graph_layer`` at the model's configured sample rate."""
    objective = Objective.on_graph_layer(model.spec, graph_layer)
    step = DreamStep(model, graph_layer).to(device).eval()
    return _trace(step, tuple(x.to(device) for x in example_step_inputs(model, objective)))


def _trace(module: nn.Module, inputs: tuple):
    """torch.jit.trace without its warnings about shape checks that are constant at one sample rate."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(module, inputs, check_trace=False)


def onnx_dream_step(model: DreamNet, graph_layer: str, metadata: dict | None = None) -> bytes:
    """The ONNX DreamStep for ``graph_layer`` at the model's configured sample rate, serialised.

    torch's exporter takes 10-20 s here, so the bare graph is cached under
    :func:`cache_dir`, keyed by the weights, metadata, layer, sample rate and versions.
    """
    key = _cache_key(model, graph_layer)
    cached = cache_dir() / f"dream-step-{key}.onnx"
    if cached.is_file():
        proto = _load_proto(cached.read_bytes())
    else:
        objective = Objective.on_graph_layer(model.spec, graph_layer)
        step = DreamStep(model.cpu(), graph_layer).eval()
        batch, context, chunk = (torch.export.Dim(n, min=1, max=4096) for n in ("batch", "context", "chunk"))
        shapes = ({0: batch, 2: context}, {0: batch, 2: chunk}, {0: batch, 2: chunk}) + (None,) * 7
        # batch 2 in the example: torch.export would fix a dimension of size 1
        proto = _to_onnx(step, tuple(example_step_inputs(model, objective, batch=2)), STEP_INPUTS, STEP_OUTPUTS,
                         shapes)
        _write_atomic(cached, proto.SerializeToString(), missing_ok=True)
    return _with_metadata(proto, metadata)


def example_logmag(model: DreamNet) -> torch.Tensor:
    """(2, n_bins, frames of the model's window) log-magnitudes at the model's configured sample rate, to trace
    the classifier."""
    return torch.log(torch.rand(2, model.stft.n_bins, sum(model.spec.default_window)) + LOG_EPS)


def onnx_classifier(model: DreamNet, metadata: dict | None = None) -> bytes:
    """The ONNX classifier at the model's configured sample rate, serialised."""
    logmag = example_logmag(model)
    shapes = ({0: torch.export.Dim("batch", min=1, max=4096), 2: torch.export.Dim("frames", min=8, max=1 << 20)},)
    proto = _to_onnx(Classifier(model.cpu()).eval(), (logmag,), ("logmag",), ("logits",), shapes)
    return _with_metadata(proto, metadata)


def cache_dir() -> Path:
    """Where exported graphs are cached: $DREAMFX_CACHE_DIR, else ~/.cache/dreamfx."""
    return Path(os.environ.get("DREAMFX_CACHE_DIR") or Path.home() / ".cache" / "dreamfx")


def _cache_key(model: DreamNet, graph_layer: str) -> str:
    digest = hashlib.sha256(json.dumps([model.meta, graph_layer, model.stft.sample_rate, dreamfx.__version__,
                                        torch.__version__], sort_keys=True).encode())
    for module in (dream_ascent, dream_step, models, frontends, surrogate):  # the code that makes the graph
        digest.update(Path(module.__file__).read_bytes())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def _to_onnx(module: nn.Module, args: tuple, input_names, output_names, dynamic_shapes):
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # it lists absent torchvision ops at warning level
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, args, dynamo=True, dynamic_shapes=dynamic_shapes, verbose=False,
                                    input_names=list(input_names), output_names=list(output_names))
    return program.model_proto


def _load_proto(data: bytes):
    import onnx
    return onnx.load_from_string(data)


def _with_metadata(proto, metadata: dict | None) -> bytes:
    """Add the metadata entries, check the whole model (onnx.checker, full check), serialise; with metadata, the
    bytes are sealed (:func:`dreamfx.files.seal`: a flipped bit anywhere is refused when the file is opened)."""
    import onnx
    del proto.metadata_props[:]
    if metadata is not None:
        for key, value in {**flat_metadata(metadata), SEAL_KEY: UNSEALED}.items():
            proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString() if metadata is None else seal(proto.SerializeToString())


def _write_atomic(path: Path, data: bytes, missing_ok: bool = False) -> None:
    """Write ``data`` atomically; ``missing_ok``: skip silently if the folder cannot be made or written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError:
        if not missing_ok:
            raise


def export_metadata(model: DreamNet, fmt: str, what: str, sample_rate: int, objective: Objective | None) -> dict:
    """The model's metadata plus the record of this export."""
    record = {"what": what, "format": fmt, "sample_rate": sample_rate, "n_bins": model.stft.n_bins,
              "n_fft": model.stft.n_fft, "hop": model.stft.hop, "dreamfx_version": dreamfx.__version__}
    if what == "dream-step":
        record.update(graph_layer=objective.graph_layer, objective=objective.record(),
                      gradient_temperatures=DREAM_TEMPERATURES,
                      inputs=list(STEP_INPUTS), outputs=list(STEP_OUTPUTS))
    else:
        record.update(inputs=["logmag"], outputs=["logits"])
    return {**model.meta, "export": record}


def flat_metadata(meta: dict) -> dict[str, str]:
    """ONNX metadata_props: the full JSON under ``dreamfx`` plus flat entries other tools can show."""
    record = meta["export"]
    flat = {METADATA_KEY: json.dumps(meta), "what": record["what"], "sample_rate": str(record["sample_rate"]),
            "n_fft": str(record["n_fft"]), "hop": str(record["hop"]), "frontend": json.dumps(meta["frontend"]),
            "classes": ",".join(meta["classes"]), "layers": ",".join(meta["layers"]),
            "dreamfx_version": record["dreamfx_version"]}
    if "objective" in record:
        flat["objective"] = json.dumps(record["objective"])
    return flat


def export_model(model: DreamNet, output: Path, *, fmt: str = "onnx", what: str = "dream-step",
                 objective: Objective | None = None, sample_rate: int = 44100) -> dict:
    """Write ``model``'s classifier or dream step to ``output``; returns the metadata written.

    objective: for dream steps (default: the layer energy of conv3); its graph
    layer fixes the graph, its kind/channel/target become the file's default.
    """
    if fmt not in FORMATS:
        raise DreamfxError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    if what not in WHATS:
        raise DreamfxError(f"unknown export {what!r}: use one of {', '.join(WHATS)}")
    objective = objective or Objective()
    objective.validate(model.spec)
    if what == "dream-step" and model.frontend.dream_domain == "mel":
        raise DreamfxError("a mel-image model (frontend 'mel') dreams on the mel image, which has no exported "
                           "dream step; export its classifier, or dream with the torch backend")
    model.configure(sample_rate)
    meta = export_metadata(model, fmt, what, sample_rate, objective if what == "dream-step" else None)
    if fmt == "onnx":
        data = onnx_dream_step(model, objective.graph_layer, meta) if what == "dream-step" else \
            onnx_classifier(model, meta)
    else:
        data = _torchscript_bytes(model, what, objective, meta)
    _write_atomic(Path(output), data)
    return meta


def _torchscript_bytes(model: DreamNet, what: str, objective: Objective, meta: dict) -> bytes:
    if what == "dream-step":
        module = traced_dream_step(model.cpu(), objective.graph_layer)
    else:
        module = _trace(Classifier(model.cpu()).eval(), (example_logmag(model),))
    buffer = io.BytesIO()
    torch.jit.save(module, buffer, _extra_files={TORCHSCRIPT_EXTRA: json.dumps(meta)})
    return buffer.getvalue()
