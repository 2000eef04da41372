"""Load a GTZAN-layout folder (``<root>/<genre>/<clip>.<ext>``) as log-magnitude spectrograms.

Works unchanged on real GTZAN or on the set rendered by
:mod:`training.render_dataset`: any format pedalboard.io reads, any sample rate
(resampled on read), any channel count (downmixed to mono).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pedalboard.io import AudioFile, get_supported_read_formats

from dreamfx.dsp.spectral import StftConfig, analyze_signal, log_magnitude


@dataclass
class Clip:
    path: Path
    label: int


def scan(root: Path) -> tuple[list[Clip], list[str]]:
    """All audio clips under ``root``, labelled by folder; returns (clips, sorted class names)."""
    root = Path(root)
    formats = set(get_supported_read_formats())
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    clips = [Clip(p, i) for i, c in enumerate(classes) for p in sorted((root / c).iterdir())
             if p.suffix.lower() in formats]
    if not clips:
        raise FileNotFoundError(f"no audio clips found under {root}/<genre>/")
    return clips, classes


def split(clips: list[Clip], holdout_every: int = 5) -> tuple[list[Clip], list[Clip]]:
    """Deterministic split: within each class, every ``holdout_every``-th clip is held out."""
    train, test = [], []
    seen: dict[int, int] = {}
    for clip in clips:
        n = seen.get(clip.label, 0)
        seen[clip.label] = n + 1
        (test if n % holdout_every == holdout_every - 1 else train).append(clip)
    return train, test


def load_mono(path: Path, sample_rate: int) -> np.ndarray:
    """Audio file -> mono float32 (samples,) at ``sample_rate``."""
    with AudioFile(str(path)).resampled_to(sample_rate) as f:
        audio = f.read(f.frames)
    return audio.mean(axis=0).astype(np.float32)


def logmag_spectrogram(path: Path, stft: StftConfig) -> torch.Tensor:
    """Log-magnitude STFT of a clip, (n_bins, frames), with the engine's framing."""
    return log_magnitude(analyze_signal(load_mono(path, stft.sample_rate), stft))
