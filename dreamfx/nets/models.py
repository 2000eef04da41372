"""The networks that dream: frontend -> conv blocks (each with its pooling) -> head -> logits.

    logmag (B, n_bins, T) -> frontend -> (B, n_features, T') -> input norm -> conv1 .. convN -> head -> logits

A model file is one safetensors file: the weights, plus the JSON metadata
(STFT settings, frontend, architecture, class / tag and layer names, training
record, licence) under the header key ``"dreamfx"``.  Nothing is unpickled.
Shipped models have names (:data:`SHIPPED_MODELS`): the compact genre model
trained here and two taggers of real music ported from musicnn.
"""

from __future__ import annotations

import json
import struct
from importlib import resources
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn

from dreamfx.errors import DreamfxError
from dreamfx.files import SEAL_KEY, UNSEALED, atomic_path, seal, seal_intact
from dreamfx.dsp.frontends import FRONTENDS
from dreamfx.dsp.spectral import LOG_EPS, StftConfig, analyze_signal, log_magnitude
from dreamfx.nets.surrogate import SurrogateMaxPool2d, SurrogateReLU, peak_over_time

FORMAT = "dreamfx-model"
FORMAT_VERSION = 1
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 192000


# Models shipped in the package, by name: the compact genre model trained here, two taggers trained on real
# music, ported from musicnn (ISC licence, see assets/LICENSE-musicnn.txt; training/port_musicnn.py), students of
# both trained here on real recordings, to dream with them (robust and plain: training/distill.py), and their live
# student, the compact network on 0.28 s windows (training/student.py).
SHIPPED_MODELS = {"default": "default_model.safetensors", "msd-vgg": "msd_vgg.safetensors",
                  "mtt-vgg": "mtt_vgg.safetensors", "tags-robust": "tags_robust.safetensors",
                  "tags-plain": "tags_plain.safetensors", "tags-live": "tags_live.safetensors"}


def model_path(model: str | Path | None = None) -> Path:
    """The file of a shipped model's name (``"default"``, ``"msd-vgg"``, ``"mtt-vgg"``, ``"tags-robust"``; None:
    the default), or ``model`` itself as a file path."""
    model = "default" if model is None else model
    if isinstance(model, str) and model in SHIPPED_MODELS:
        return Path(str(resources.files("dreamfx") / "assets" / SHIPPED_MODELS[model]))
    return Path(model)


def default_model_path() -> Path:
    """The bundled default model (package assets)."""
    return model_path("default")


def example_clip_path() -> Path:
    """The bundled example clip: 10 s of jazz rendered with FluidSynth, 44.1 kHz stereo (package assets)."""
    return Path(str(resources.files("dreamfx") / "assets" / "example.flac"))


class ModelSpec:
    """What a model promises, read from its metadata alone: classes, layers, channel counts, STFT, pooling.

    Shared by the torch model and by exported files (which carry the same
    metadata), so objectives, sample rates and window sizes are checked the same
    way for both.  An exported graph was built for one sample rate
    (``meta["export"]["sample_rate"]``).
    """

    def __init__(self, meta: dict):
        self.meta = meta
        self.class_names = tuple(meta["classes"])
        self.channels = tuple(meta["channels"])
        self.layer_names = tuple(f"conv{i + 1}" for i in range(len(self.channels))) + ("logits",)
        self.stft_reference = StftConfig(**meta["stft"])
        # Max pooling after each conv block, (freq, time) kernel + (freq, time) stride, or None (default: 2x2
        # between blocks, none after the last).
        pools = meta.get("pools") or [[2, 2, 2, 2]] * (len(self.channels) - 1) + [None]
        self.pools = tuple(None if p is None else (tuple(p[:2]), tuple(p[2:])) for p in pools)
        self.head = dict(meta.get("head") or {"kind": "mean-max"})
        self.frame_step = int(meta["frontend"].get("frame_step", 1))
        # independent tag probabilities (sigmoid, the taggers) rather than one class of several (softmax, genres)
        self.tagging = meta.get("task") == "tagging"
        window = meta.get("dream_window") or {"chunk_frames": 8, "context_frames": 24}
        self.default_window = (int(window["chunk_frames"]), int(window["context_frames"]))

    @property
    def exported_sample_rate(self) -> int | None:
        return self.meta.get("export", {}).get("sample_rate")

    @property
    def exported_graph_layer(self) -> str | None:
        """The layer an exported dream step ends at (None: not an exported dream step)."""
        return self.meta.get("export", {}).get("graph_layer")

    def stft_for(self, sample_rate: int) -> StftConfig:
        """The STFT settings at ``sample_rate``; DreamfxError where the model cannot run there."""
        if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
            raise DreamfxError(f"sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz: "
                               "resample the audio first")
        exported = self.exported_sample_rate
        if exported is not None and exported != sample_rate:
            raise DreamfxError(f"this exported model was built for {exported} Hz, the audio is {sample_rate} Hz: "
                               f"re-export it with --sample-rate {sample_rate} or resample the audio")
        return self.stft_reference.for_sample_rate(int(sample_rate))

    def covers_exactly(self, frames: int) -> bool:
        """True when a window of ``frames`` STFT frames reaches the logits with every frame pooled, none
        dropped at the end (so the newest frames, which the dream changes, reach every layer)."""
        if frames % self.frame_step:
            return False
        t = frames // self.frame_step
        for pool in self.pools:
            if pool is not None:
                (_, kernel), (_, stride) = pool
                if t < kernel or (t - kernel) % stride:
                    return False
                t = (t - kernel) // stride + 1
        return t >= self.head.get("frames", 1)

    def check_window(self, frames: int) -> None:
        """DreamfxError naming the nearest window sizes that :meth:`covers_exactly`."""
        if not self.covers_exactly(frames):
            valid = [n for n in range(1, 1025) if self.covers_exactly(n)]
            below = [n for n in valid if n < frames][-1:]
            above = [n for n in valid if n > frames][:1]
            raise DreamfxError(f"chunk_frames + context_frames = {frames} does not fit this model's pooling: use "
                               f"{' or '.join(str(n) for n in below + above)} (e.g. the model's own "
                               f"chunk_frames={self.default_window[0]}, context_frames={self.default_window[1]})")


class DreamNet(nn.Module):
    """CNN classifier / tagger on a linear log-magnitude STFT, its architecture described by its metadata.

    Input ``logmag`` (batch, n_bins, frames); output logits (batch, n_classes).
    A frontend (:mod:`dreamfx.dsp.frontends`) turns it into features (batch,
    n_features, frames / frame_step), then a batch norm on the input (one per
    feature, or one for all: ``input_norm = "scalar"``), then conv blocks of
    ``convs_per_block`` 3x3 units (``unit = "conv-bn-relu"`` or
    ``"conv-relu-bn"``), each block followed by its max pooling (``pools``), then
    the head:

    * ``mean-max`` (dreamfx's genre models): mean over frequency, then the mean
      and the maximum over time, then a linear layer;
    * ``dense-over-time`` (the musicnn VGG taggers): a dense layer over
      ``frames`` consecutive time steps of the last pooled map (frequency 1),
      slid along time and averaged: exactly the original flatten + dense on the
      window it was trained on, and defined on any longer window.

    Named layers (each block's output, before its pooling): ``conv1`` .. ``convN``, then ``logits``.
    """

    def __init__(self, meta: dict):
        super().__init__()
        self.meta = meta
        self.spec = ModelSpec(meta)
        fe = dict(meta["frontend"])
        self.frontend = FRONTENDS[fe.pop("kind")](**fe)
        self.stft_reference = self.spec.stft_reference
        eps = meta.get("batch_norm_eps", 1e-5)
        self.scalar_input_norm = meta.get("input_norm", "per-feature") == "scalar"
        self.input_norm = nn.BatchNorm2d(1, eps=eps) if self.scalar_input_norm else \
            nn.BatchNorm1d(self.frontend.n_features, eps=eps)
        relu_first = meta.get("unit", "conv-bn-relu") == "conv-relu-bn"
        bias = meta.get("conv_bias", False)
        blocks, c_in = [], 1
        for c_out in meta["channels"]:
            units = []
            for _ in range(meta.get("convs_per_block", 1)):
                conv, bn = nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias), nn.BatchNorm2d(c_out, eps=eps)
                units += [conv, SurrogateReLU(), bn] if relu_first else [conv, bn, SurrogateReLU()]
                c_in = c_out
            blocks.append(nn.Sequential(*units))
        self.blocks = nn.ModuleList(blocks)
        self.pools = [None if p is None else SurrogateMaxPool2d(*p) for p in self.spec.pools]  # (kernel, stride)
        self.dropout = nn.Dropout(meta.get("dropout", 0.3))
        n_classes = len(meta["classes"])
        if self.spec.head["kind"] == "mean-max":
            self.head = nn.Linear(2 * c_in, n_classes)
        else:
            self.head = nn.Conv1d(c_in, n_classes, self.spec.head["frames"])
        self.layer_names = self.spec.layer_names
        self.gradient_temperatures = (0.0, 0.0)  # (ReLU, max): exact
        self.stft = self.stft_reference
        self.configure(self.stft_reference.sample_rate)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.spec.class_names

    def smooth_gradients(self, relu_temperature: float, max_temperature: float) -> DreamNet:
        """Differentiate ReLUs and maxima (pools, the head's peak over time) smoothly at these temperatures
        (:mod:`dreamfx.nets.surrogate`; 0 = exact, the default, for training); forward values do not change.  The dream
        backends set the dream's (``DREAM_TEMPERATURES``).  Returns the model."""
        self.gradient_temperatures = (float(relu_temperature), float(max_temperature))
        for module in [*self.modules(), *filter(None, self.pools)]:  # the pools are a plain list
            if isinstance(module, SurrogateReLU):
                module.temperature = float(relu_temperature)
            elif isinstance(module, SurrogateMaxPool2d):
                module.temperature = float(max_temperature)
        return self

    def configure(self, sample_rate: int) -> StftConfig:
        """Build the frontend for ``sample_rate``; returns the STFT settings to use there."""
        self.stft = self.spec.stft_for(int(sample_rate))
        self.frontend.configure(self.stft.sample_rate, self.stft.n_fft)
        return self.stft

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        """Frontend features (B, n_features, T) -> the first block's input (B, 1, n_features, T)."""
        if self.scalar_input_norm:
            return self.input_norm(features.unsqueeze(1))
        return self.input_norm(features).unsqueeze(1)

    def activations(self, logmag: torch.Tensor, until: str | None = None) -> dict[str, torch.Tensor]:
        """Activations of every named layer up to ``until`` (all when None)."""
        return self.activations_of_features(self.frontend(logmag), until)

    def activations_of_features(self, features: torch.Tensor, until: str | None = None) -> dict[str, torch.Tensor]:
        """:meth:`activations` from frontend features (B, n_features, T) (e.g. musicnn's own mel patches)."""
        x = self.normalize(features)
        out = {}
        for name, block, pool in zip(self.layer_names, self.blocks, self.pools):
            x = block(x)
            out[name] = x
            if until == name:
                return out
            if pool is not None:
                x = pool(x)
        out["logits"] = self.logits(x)
        return out

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The head: the last block's pooled output (B, C, H, T') -> logits (B, n_classes)."""
        if self.spec.head["kind"] == "mean-max":
            pooled = x.mean(dim=2)  # over frequency: (B, C, T')
            peak = peak_over_time(pooled, self.gradient_temperatures[1])
            return self.head(self.dropout(torch.cat([pooled.mean(dim=2), peak], dim=1)))
        return self.head(self.dropout(x[:, :, 0])).mean(dim=2)

    def forward(self, logmag: torch.Tensor) -> torch.Tensor:
        return self.activations(logmag)["logits"]


def class_probabilities(spec: ModelSpec, logits: torch.Tensor) -> torch.Tensor:
    """Probabilities of logits (..., n_classes): sigmoid per tag for a tagger, softmax over the classes else."""
    return torch.sigmoid(logits) if spec.tagging else logits.softmax(dim=-1)


def patch_logits(model: DreamNet, audio: np.ndarray, sample_rate: int, patch_frames: int,
                 hop_frames: int | None = None) -> torch.Tensor:
    """Logits (patches, n_classes) of ``model`` on patches of ``patch_frames`` STFT frames of ``audio``.

    audio: (channels, samples) float32, downmixed as the engine dreams; patches start every ``hop_frames``
    frames (default: ``patch_frames``, no overlap), the last whole one included.  For the musicnn taggers,
    374 frames are musicnn's 3 s patches (187 of its frames); sigmoid gives the tag probabilities.
    """
    stft = model.configure(sample_rate)
    logmag = log_magnitude(analyze_signal(np.asarray(audio, np.float32).mean(axis=0), stft))[None]
    starts = range(0, logmag.shape[-1] - patch_frames + 1, hop_frames or patch_frames)
    device = next(model.parameters()).device
    with torch.no_grad():
        return torch.cat([model(logmag[..., s:s + patch_frames].to(device)) for s in starts]).cpu()


ARCHITECTURES = {"compact": {"channels": (16, 32, 64, 128), "convs_per_block": 1},
                 "deep": {"channels": (24, 48, 96, 192), "convs_per_block": 2}}


def build_metadata(classes: list[str], *, frontend: str = "mel_in_the_loop", architecture: str = "compact",
                   n_mels=64, fmin=30.0, fmax=11025.0, sample_rate=22050, n_fft=1024, hop=256,
                   training: dict | None = None) -> dict:
    """Metadata of a new DreamNet (the JSON stored in the model file).

    frontend: "mel_in_the_loop", "mel" or "linear" (see dreamfx.dsp.frontends); architecture: "compact" or "deep".
    """
    if frontend == "linear":
        frontend_meta = {"kind": "linear", "n_bins": n_fft // 2 + 1}
    else:
        frontend_meta = {"kind": frontend, "n_mels": n_mels, "fmin": fmin, "fmax": fmax}
    arch = ARCHITECTURES[architecture]
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "architecture": "DreamNet",
        "variant": architecture, "channels": list(arch["channels"]), "convs_per_block": arch["convs_per_block"],
        "classes": list(classes), "frontend": frontend_meta,
        "stft": {"sample_rate": sample_rate, "n_fft": n_fft, "hop": hop},
        "window": "hann", "log_eps": LOG_EPS, "input": "natural log of |STFT| / sum(window) + log_eps",
        "sample_rates": [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE],
        "layers": [f"conv{i + 1}" for i in range(len(arch["channels"]))] + ["logits"],
        "training": training or {},
    }


def save_model(model: DreamNet, path: Path) -> None:
    """Write weights + metadata to ``path`` (safetensors), sealed (:func:`dreamfx.files.seal`), atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    data = safetensors.torch.save(tensors, metadata={"dreamfx": json.dumps(model.meta), SEAL_KEY: UNSEALED})
    with atomic_path(path) as tmp:
        tmp.write_bytes(seal(data))


def read_metadata(path: Path) -> dict:
    """The JSON metadata of a model file, validated; raises DreamfxError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise DreamfxError(f"model file {path} not found: pass an existing .safetensors model or one of the "
                           f"shipped models ({', '.join(SHIPPED_MODELS)})")
    try:
        with safetensors.safe_open(str(path), "pt") as f:
            header = f.metadata() or {}
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise DreamfxError(f"model file {path} is not a valid safetensors file ({str(exc).splitlines()[0]}): "
                           "re-export or re-train it") from None
    try:
        meta = json.loads(header["dreamfx"])
    except (KeyError, json.JSONDecodeError):
        raise DreamfxError(f"model file {path} has no dreamfx metadata: it was not written by dreamfx") from None
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise DreamfxError(f"model file {path} has format {meta.get('format')!r} version "
                           f"{meta.get('format_version')!r}; this dreamfx reads {FORMAT!r} version {FORMAT_VERSION}")
    return meta


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> DreamNet:
    """Load a model file or a shipped model by name (the bundled default when ``path`` is None) in eval mode."""
    path = model_path(path)
    meta = read_metadata(path)
    model = DreamNet(meta)
    data = path.read_bytes()
    (header_size,) = struct.unpack("<Q", data[:8])
    digest = json.loads(data[8:8 + header_size]).get("__metadata__", {}).get(SEAL_KEY)
    if digest is not None and not seal_intact(data, digest):
        raise DreamfxError(f"model file {path} is damaged (its bytes do not match its seal): re-train it or copy it "
                           "again") from None
    try:
        state = safetensors.torch.load(data)
        model.load_state_dict(state)
    except Exception as exc:
        raise DreamfxError(f"model file {path} does not match its metadata ({str(exc).splitlines()[0]}): "
                           "re-export or re-train it") from None
    if not all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()):
        raise DreamfxError(f"model file {path} holds NaN/Inf weights: re-train it") from None
    model.eval().requires_grad_(False)
    return model.to(device)
