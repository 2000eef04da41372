"""The seed-style reconstruction, for comparison: Griffin-Lim over the whole dreamed spectrogram (offline).

The streaming engine rebuilds audio chunk by chunk from the input's phase
(optionally refined within the chunk, ``reconstruction = "phase-refine"``).
The project dreamfx grew from instead dreamt on the mel image, inverted it to
linear magnitudes and ran librosa's Griffin-Lim on the whole file; this module
does that last step from what the engine dreamed, so both can be measured side
by side (``benchmarks/fidelity.py``).
"""

from __future__ import annotations

import librosa
import numpy as np
import torch

from dreamfx.engine.streaming import ChunkReport, DreamEngine


def dreamed_magnitude(reports: list[ChunkReport], engine: DreamEngine, n_frames: int) -> np.ndarray:
    """(n_bins, n_frames) downmix magnitude the dream asked for, frame by frame, from the chunk reports."""
    k = engine.chunk_frames
    frames = torch.cat([r.dreamed[0, :, -k:] for r in sorted(reports, key=lambda r: r.index)], dim=-1)
    return frames[:, :n_frames].numpy()


def griffin_lim(output: np.ndarray, reports: list[ChunkReport], engine: DreamEngine, iterations: int = 32,
                seed: int = 0) -> np.ndarray:
    """Audio (channels, samples) of the dreamed downmix magnitude by librosa's Griffin-Lim (random initial
    phase, as the seed did); every channel gets the same mono signal.  ``output`` gives only the length."""
    cfg = engine.stft
    channels, samples = output.shape
    n_frames = -(-samples // cfg.hop)
    magnitude = dreamed_magnitude(reports, engine, n_frames) * float(engine.window.sum())  # librosa's scaling
    signal = librosa.griffinlim(magnitude, n_iter=iterations, hop_length=cfg.hop, win_length=cfg.n_fft,
                                n_fft=cfg.n_fft, window="hann", center=False, init="random", random_state=seed)
    mono = np.zeros(samples, dtype=np.float32)
    usable = signal[cfg.pad:cfg.pad + samples]  # the engine's framing starts n_fft - hop samples early
    mono[:len(usable)] = usable
    return np.tile(mono, (channels, 1))
