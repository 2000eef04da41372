"""Guides: dream toward a recording the musician chooses instead of a class or a layer's energy.

A guide is summarised once, as a texture, by the dreaming network (:func:`guide_features`): the guide's
log-magnitude is cut into windows of the dream window's length, the network runs on all of them, and for every
conv layer the statistics are kept:

    guide audio (channels, samples) --STFT--> windows (W, n_bins, T) --network--> per layer:
        energy (C,)      mean over windows and positions of act ** 2
        gram (C, C)      mean over windows of act act^T / positions
        samples (N, C)   up to MAX_SAMPLES activation vectors (one per position), for the dot-product match
    and the tag (or genre) profile (n_classes,): the mean probability over the windows.

The dream then maximises a *match* (:data:`MATCHES`) between the window's features and the guide's:

* ``"energy"``: -mean_c (ln E_c(x) - ln E_c(guide))^2 over the guided layers (per-channel energies);
* ``"gram"``: -|G(x) - G(guide)|^2 / |G(guide)|^2 (Gram matrices: what sounds together, Gatys et al. 2016);
* ``"dot"``: DeepDream's "controlling dreams": every position's activation times the guide vector that matches
  it best, mean over positions (scaled by the guide vectors' mean square);
* ``"tags"``: the log-likelihood of the guide's tag profile under the window's logits (cross-entropy: its
  gradient on each logit is guide probability - window probability, the guide relative to the input).

Values are log-likelihoods or negative distances, so their gains are differences (like a class's logit).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dreamfx.audio_io import read_audio
from dreamfx.dsp.spectral import analyze_signal, log_magnitude
from dreamfx.errors import DreamfxError
from dreamfx.nets.models import DreamNet, class_probabilities

MATCHES = ("energy", "gram", "dot", "tags")
GUIDE_TAGS_GRAPH = "guide-tags"  # the exported dream step of the "tags" match: the guide's profile is its weights
MAX_WINDOWS = 64   # windows of a guide the statistics are taken over (evenly spread over the recording)
MAX_SAMPLES = 512  # activation vectors kept per layer for the "dot" match
MIN_GUIDE_SECONDS = 1.0
GUIDE_SECONDS = 600.0  # the most of a guide recording that is read
SILENCE = 1e-5     # a guide whose peak is below this (-100 dBFS) holds nothing to dream toward


@dataclass(frozen=True, eq=False)
class GuideFeatures:
    """A guide's statistics under one network (see the module docstring); compared by identity.

    name: the guide's file (its absolute path); model_digest: the network's weights digest (the features
    only mean something to that network); energy / gram / samples: per conv layer name; profile (n_classes,).
    """

    name: str
    model_digest: str
    energy: dict[str, torch.Tensor]
    gram: dict[str, torch.Tensor]
    samples: dict[str, torch.Tensor]
    profile: torch.Tensor

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.energy)

    def match(self, model: DreamNet, logmag: torch.Tensor, how: str, layers: tuple[str, ...]) -> torch.Tensor:
        """The match ``how`` of windows logmag (B, n_bins, T) with the guide, per window (B,); ``layers``: the
        conv layers it compares (the deepest one alone for "dot"; unused by "tags")."""
        if how == "tags":
            logits = model(logmag)
            return tags_match(logits, self.profile.to(logits.device), model.spec.tagging)[0]
        deepest = max(layers, key=lambda name: int(name.removeprefix("conv")))
        acts = model.activations(logmag, until=deepest)
        terms = []
        for name in ([deepest] if how == "dot" else layers):
            act = acts[name].flatten(2)                                          # (B, C, positions)
            if how == "energy":
                log_energy = act.square().mean(dim=2).clamp_min(1e-12).log()    # (B, C)
                terms.append(-(log_energy - self.energy[name].clamp_min(1e-12).log()).square().mean(dim=1))
            elif how == "gram":
                gram, target = act @ act.transpose(1, 2) / act.shape[2], self.gram[name]
                terms.append(-(gram - target).square().sum(dim=(1, 2)) / target.square().sum().clamp_min(1e-12))
            else:
                guide = self.samples[name]                                       # (N, C)
                best = guide[(guide @ act).argmax(dim=1)]                        # (B, positions, C)
                terms.append((best.transpose(1, 2) * act).sum(dim=1).mean(dim=1) / guide.square().sum(1).mean())
        return torch.stack(terms).mean(dim=0)


def tags_match(logits: torch.Tensor, profile: torch.Tensor, tagging: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The "tags" match of logits (B, n_classes) with a guide's ``profile`` (n_classes,), and its gradient with
    respect to the logits (B, n_classes): for taggers, the mean over tags of the log-likelihood of the guide's
    probabilities (gradient (profile - sigmoid) / n); for a genre model, the cross-entropy sum_k p_k log softmax_k
    (gradient profile - softmax)."""
    if tagging:
        value = (profile * F.logsigmoid(logits) + (1 - profile) * F.logsigmoid(-logits)).mean(dim=1)
        return value, (profile - torch.sigmoid(logits)) / logits.shape[1]
    return (profile * logits.log_softmax(dim=1)).sum(dim=1), profile - profile.sum() * logits.softmax(dim=1)


def model_digest(model: DreamNet) -> str:
    """A short digest of a network's weights: which network a guide's features belong to."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def guide_features(model: DreamNet, audio: np.ndarray, sample_rate: int, window_frames: int, name: str,
                   device: torch.device | None = None) -> GuideFeatures:
    """The statistics of guide ``audio`` (channels, samples) float32 at ``sample_rate`` under ``model``, over
    windows of ``window_frames`` STFT frames (the dream window's length).  The model is configured for the
    guide's rate while it listens and for its previous rate again afterwards."""
    if not np.abs(audio).max() > SILENCE:
        raise DreamfxError(f"guide {name} is silent (peak below -100 dBFS): give a recording with sound in it")
    previous = model.stft.sample_rate
    stft = model.configure(sample_rate)
    try:
        logmag = log_magnitude(analyze_signal(np.asarray(audio, np.float32).mean(axis=0), stft))  # (n_bins, T)
        frames = logmag.shape[-1]
        if frames < window_frames or audio.shape[-1] < MIN_GUIDE_SECONDS * sample_rate:
            raise DreamfxError(f"guide {name} is {audio.shape[-1] / sample_rate:.2f} s long: a guide needs at least "
                               f"{max(MIN_GUIDE_SECONDS, window_frames * stft.hop / sample_rate):.1f} s of audio")
        count = min(MAX_WINDOWS, frames // window_frames)
        starts = np.linspace(0, frames - window_frames, count).round().astype(int)
        windows = torch.stack([logmag[:, s:s + window_frames] for s in starts])
        device = device or next(model.parameters()).device
        with torch.no_grad():
            acts = model.activations(windows.to(device))
        conv_layers = model.layer_names[:-1]
        energy, gram, samples = {}, {}, {}
        for layer in conv_layers:
            act = acts[layer].flatten(2)                                          # (W, C, positions)
            energy[layer] = act.square().mean(dim=(0, 2))
            gram[layer] = (act @ act.transpose(1, 2) / act.shape[2]).mean(dim=0)
            vectors = act.transpose(1, 2).reshape(-1, act.shape[1])               # (W * positions, C)
            keep = np.linspace(0, len(vectors) - 1, min(MAX_SAMPLES, len(vectors))).round().astype(int)
            samples[layer] = vectors[torch.from_numpy(keep).to(vectors.device)]
        profile = class_probabilities(model.spec, acts["logits"]).mean(dim=0)
    finally:
        model.configure(previous)
    if not all(torch.isfinite(t).all() for t in [*energy.values(), *gram.values(), profile]):
        raise DreamfxError(f"guide {name}: its features are not finite (is the file damaged?)")
    return GuideFeatures(name, model_digest(model), energy, gram, samples, profile)


def summarise_guide_file(path: str | Path, networks: Sequence[DreamNet], window_frames: int,
                         device: torch.device | None = None) -> list[GuideFeatures]:
    """The statistics of the recording at ``path`` (its first GUIDE_SECONDS, at its own rate) under each of
    ``networks``, over windows of ``window_frames`` STFT frames."""
    path = Path(path)
    if not path.is_file():
        raise DreamfxError(f"guide: {path} not found: give a recording (wav, flac, ogg, mp3) to dream toward")
    audio, sample_rate = read_audio(path, GUIDE_SECONDS)
    return [guide_features(net, audio, sample_rate, window_frames, str(path.resolve()), device) for net in networks]
