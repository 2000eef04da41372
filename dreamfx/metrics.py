"""Dream retention: how much of the dream survives resynthesis.

For every chunk, the objective is evaluated on three versions of the model's
window (context + new frames): the dry input, the dreamed spectrogram the model
saw, and the rendered audio re-analysed with the same STFT.  With ``gain`` =
ln(after / before) for energy objectives (after - before for class logits),

    retention = sum(gain_audio) / sum(gain_spectral)

1.0 means every change the dream made is still there after overlap-add.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dreamfx.effect import DreamEffect, to_channels_first
from dreamfx.spectral import LOG_EPS, analyze_signal


@dataclass
class RetentionReport:
    objective_dry: float        # mean objective over chunks, input
    objective_spectral: float   # ... on the dreamed spectrogram
    objective_audio: float      # ... on the re-analysed output audio
    gain_spectral: float        # summed per-chunk gain on the spectrogram
    gain_audio: float           # summed per-chunk gain on the audio
    chunks: int
    output: np.ndarray          # the rendered audio (channels, samples)

    @property
    def retention(self) -> float:
        return self.gain_audio / self.gain_spectral

    def summary(self) -> str:
        return (f"objective dry {self.objective_dry:.4g} -> dreamed spectrogram {self.objective_spectral:.4g} -> "
                f"rendered audio {self.objective_audio:.4g}; gain spectral {self.gain_spectral:.3f}, "
                f"audio {self.gain_audio:.3f}; retention {self.retention:.3f} over {self.chunks} chunks")


def measure_retention(effect: DreamEffect, audio: np.ndarray, sample_rate: int) -> RetentionReport:
    """Render ``audio`` through ``effect`` and measure the dream's retention (see module doc)."""
    audio, _ = to_channels_first(audio)
    engine = effect.engine(sample_rate, audio.shape[0])
    reports = []
    engine.on_chunk = reports.append
    try:
        output = engine.render(audio)
    finally:
        engine.on_chunk = None
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
    return RetentionReport(*(float(np.mean(v)) for v in values), *gains, len(reports), output)
