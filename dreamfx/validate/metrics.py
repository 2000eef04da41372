"""Dream retention: how much of the dream survives resynthesis.

For every chunk, the objective is evaluated on three versions of the model's
window (context + new frames): the dry input, the dreamed spectrogram the model
saw, and the rendered audio re-analysed with the same STFT.  With ``gain`` =
ln(after / before) for energy objectives (after - before for class logits),

    retention = sum(gain_audio) / sum(gain_spectral)

1.0 means every change the dream made is still there after overlap-add.

Spectral convergence measures the same loss without the model: the distance
between the output's re-analysed magnitude and the magnitude the dream asked
for, over the dreamed frames, ``||A - D||_F / ||D||_F`` (0 = consistent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from dreamfx.audio_io import to_channels_first
from dreamfx.plugin.effect import DreamEffect
from dreamfx.engine.streaming import ChunkReport, DreamEngine
from dreamfx.dsp.spectral import LOG_EPS, analyze_signal

# Rebuilds the audio to measure from what the engine did: (engine output, chunk reports, engine) -> audio.
Reconstruct = Callable[[np.ndarray, list[ChunkReport], DreamEngine], np.ndarray]


@dataclass
class RetentionReport:
    objective_dry: float        # mean objective over chunks, input
    objective_spectral: float   # ... on the dreamed spectrogram
    objective_audio: float      # ... on the re-analysed output audio
    gain_spectral: float        # summed per-chunk gain on the spectrogram
    gain_audio: float           # summed per-chunk gain on the audio
    spectral_convergence: float  # ||re-analysed - dreamed|| / ||dreamed|| over the dreamed frames
    chunks: int
    output: np.ndarray          # the rendered audio (channels, samples)

    @property
    def retention(self) -> float:
        return self.gain_audio / self.gain_spectral

    def summary(self) -> str:
        return (f"objective dry {self.objective_dry:.4g} -> dreamed spectrogram {self.objective_spectral:.4g} -> "
                f"rendered audio {self.objective_audio:.4g}; gain spectral {self.gain_spectral:.3f}, "
                f"audio {self.gain_audio:.3f}; retention {self.retention:.3f} over {self.chunks} chunks; "
                f"spectral convergence {self.spectral_convergence:.3f}")


def measure_retention(effect: DreamEffect, audio: np.ndarray, sample_rate: int,
                      reconstruct: Reconstruct | None = None) -> RetentionReport:
    """Render ``audio`` through ``effect`` and measure the dream's retention (see module doc).

    reconstruct: rebuild the audio another way (e.g. :func:`dreamfx.engine.reconstruction.griffin_lim`).
    """
    audio, _ = to_channels_first(audio)
    engine = effect.engine(sample_rate, audio.shape[0])
    reports = []
    engine.on_chunk = reports.append
    try:
        output = engine.render(audio)
    finally:
        engine.on_chunk = None
    if reconstruct is not None:
        output = reconstruct(output, reports, engine)
    k, c = engine.chunk_frames, engine.context_frames
    n_frames = -(-audio.shape[1] // engine.stft.hop)
    reports = [r for r in reports if (r.index + 1) * k <= n_frames]  # chunks wholly inside the input
    reanalysed = analyze_signal(output.mean(axis=0), engine.stft).abs()  # downmix, as the engine dreams
    reanalysed = torch.cat([torch.zeros(reanalysed.shape[0], c), reanalysed], dim=-1)
    audio_windows = torch.stack([reanalysed[:, r.index * k:r.index * k + c + k] for r in reports])
    dry = torch.cat([r.dry for r in reports])
    dreamed = torch.cat([r.dreamed for r in reports])

    objective = effect.settings.objective
    values = [engine.backend.evaluate(objective, torch.log(m + LOG_EPS)).cpu().double().numpy()
              for m in (dry, dreamed, audio_windows)]
    gains = [sum(objective.gain(b, a) for b, a in zip(values[0], v)) for v in values[1:]]
    changed = [i for i, r in enumerate(reports) if not torch.equal(r.dry, r.dreamed)]
    wanted, got = dreamed[changed][..., -k:], audio_windows[changed][..., -k:]
    convergence = float(torch.linalg.norm(got - wanted) / torch.linalg.norm(wanted)) if changed else 0.0
    return RetentionReport(*(float(np.mean(v)) for v in values), *gains, convergence, len(reports), output)


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """SNR (dB) of ``other`` against ``reference``: energy of reference / energy of the difference."""
    difference = float(np.square(reference.astype(np.float64) - other).sum())
    return float("inf") if difference == 0 else 10 * np.log10(float(np.square(reference.astype(np.float64)).sum())
                                                                / difference)


def perturbation_snr(process: Callable[[np.ndarray], np.ndarray], audio: np.ndarray, noise: float = 1e-7,
                     seed: int = 0) -> float:
    """How smooth ``process`` (audio -> audio, from a reset state) is: SNR (dB) of its output for ``audio`` plus
    Gaussian noise of standard deviation ``noise`` against its output for ``audio``."""
    nudged = audio + np.random.default_rng(seed).standard_normal(audio.shape).astype(np.float32) * noise
    return snr_db(process(audio), process(nudged))
