"""The genre classifier that dreams: frontend -> conv blocks -> pooled logits.

A model file is one safetensors file: the weights, plus the JSON metadata
(STFT settings, frontend, class and layer names, training record) under the
header key ``"dreamfx"``.  Nothing is unpickled.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import safetensors
import safetensors.torch
import torch
from torch import nn

from dreamfx.errors import DreamfxError
from dreamfx.files import atomic_path
from dreamfx.frontends import FRONTENDS
from dreamfx.spectral import LOG_EPS, StftConfig

FORMAT = "dreamfx-model"
FORMAT_VERSION = 1
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 192000


def default_model_path() -> Path:
    """The bundled default model (package assets)."""
    return Path(str(resources.files("dreamfx") / "assets" / "default_model.safetensors"))


def example_clip_path() -> Path:
    """The bundled example clip: 10 s of jazz rendered with FluidSynth, 44.1 kHz stereo (package assets)."""
    return Path(str(resources.files("dreamfx") / "assets" / "example.flac"))


class ModelSpec:
    """What a model promises, read from its metadata alone: classes, layers, channel counts, STFT.

    Shared by the torch model and by exported files (which carry the same
    metadata), so objectives and sample rates are checked the same way for both.
    An exported graph was built for one sample rate (``meta["export"]["sample_rate"]``).
    """

    def __init__(self, meta: dict):
        self.meta = meta
        self.class_names = tuple(meta["classes"])
        self.channels = tuple(meta["channels"])
        self.layer_names = tuple(f"conv{i + 1}" for i in range(len(self.channels))) + ("logits",)
        self.stft_reference = StftConfig(**meta["stft"])

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


class DreamNet(nn.Module):
    """Compact CNN genre classifier on a linear log-magnitude STFT.

    Input ``logmag`` (batch, n_bins, frames); output logits (batch, n_classes).
    A frontend (:mod:`dreamfx.frontends`) turns it into features; then blocks of
    ``convs_per_block`` (conv 3x3, batch norm, ReLU) units (1: the compact
    default; 2: a deeper, VGG-like variant).
    Named layers (activations after each block's last ReLU): ``conv1`` .. ``convN``, then ``logits``.
    Each block halves frequency and time except the last, so ``frames`` should
    be a multiple of ``2 ** (len(channels) - 1)`` for pooling without loss.
    """

    def __init__(self, meta: dict):
        super().__init__()
        self.meta = meta
        self.spec = ModelSpec(meta)
        fe = dict(meta["frontend"])
        self.frontend = FRONTENDS[fe.pop("kind")](**fe)
        self.stft_reference = self.spec.stft_reference
        self.input_norm = nn.BatchNorm1d(self.frontend.n_features)
        blocks, c_in = [], 1
        channels = meta["channels"]
        for c_out in channels:  # one or more (conv 3x3, batch norm, ReLU) units per block (VGG-like when more)
            units = []
            for _ in range(meta.get("convs_per_block", 1)):
                units += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
                c_in = c_out
            blocks.append(nn.Sequential(*units))
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(meta.get("dropout", 0.3))
        self.head = nn.Linear(2 * c_in, len(meta["classes"]))
        self.layer_names = self.spec.layer_names
        self.stft = self.stft_reference
        self.configure(self.stft_reference.sample_rate)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.spec.class_names

    def configure(self, sample_rate: int) -> StftConfig:
        """Build the frontend for ``sample_rate``; returns the STFT settings to use there."""
        self.stft = self.spec.stft_for(int(sample_rate))
        self.frontend.configure(self.stft.sample_rate, self.stft.n_fft)
        return self.stft

    def activations(self, logmag: torch.Tensor, until: str | None = None) -> dict[str, torch.Tensor]:
        """Activations of every named layer up to ``until`` (all when None)."""
        x = self.input_norm(self.frontend(logmag)).unsqueeze(1)  # (B, 1, n_features, T)
        out = {}
        for i, block in enumerate(self.blocks):
            x = block(x)
            out[self.layer_names[i]] = x
            if until == self.layer_names[i]:
                return out
            if i < len(self.blocks) - 1:
                x = self.pool(x)
        pooled = x.mean(dim=2)  # over frequency: (B, C, T')
        features = torch.cat([pooled.mean(dim=2), pooled.amax(dim=2)], dim=1)
        out["logits"] = self.head(self.dropout(features))
        return out

    def forward(self, logmag: torch.Tensor) -> torch.Tensor:
        return self.activations(logmag)["logits"]


ARCHITECTURES = {"compact": {"channels": (16, 32, 64, 128), "convs_per_block": 1},
                 "deep": {"channels": (24, 48, 96, 192), "convs_per_block": 2}}


def build_metadata(classes: list[str], *, frontend: str = "mel_in_the_loop", architecture: str = "compact",
                   n_mels=64, fmin=30.0, fmax=11025.0, sample_rate=22050, n_fft=1024, hop=256,
                   training: dict | None = None) -> dict:
    """Metadata of a new DreamNet (the JSON stored in the model file).

    frontend: "mel_in_the_loop", "mel" or "linear" (see dreamfx.frontends); architecture: "compact" or "deep".
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
    """Write weights + metadata to ``path`` (safetensors), atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        safetensors.torch.save_file(tensors, str(tmp), metadata={"dreamfx": json.dumps(model.meta)})


def read_metadata(path: Path) -> dict:
    """The JSON metadata of a model file, validated; raises DreamfxError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise DreamfxError(f"model file {path} not found: pass an existing .safetensors model or omit --model")
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


def load_model(path: Path | None = None, device: str | torch.device = "cpu") -> DreamNet:
    """Load a model file (the bundled default when ``path`` is None) in eval mode."""
    path = default_model_path() if path is None else Path(path)
    meta = read_metadata(path)
    model = DreamNet(meta)
    try:
        state = safetensors.torch.load_file(str(path))
        model.load_state_dict(state)
    except Exception as exc:
        raise DreamfxError(f"model file {path} does not match its metadata ({str(exc).splitlines()[0]}): "
                           "re-export or re-train it") from None
    model.eval().requires_grad_(False)
    return model.to(device)
