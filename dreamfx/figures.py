"""Figures: spectrograms of audio before and after the dream (matplotlib, written as PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dreamfx.files import atomic_path

N_FFT, HOP = 2048, 512


def spectrogram_db(audio: np.ndarray) -> np.ndarray:
    """(channels, samples) float32 -> (1 + N_FFT/2, frames) dB of the downmix's STFT magnitude, 0 dB = full scale."""
    import librosa
    mono = audio.mean(axis=0)
    magnitude = np.abs(librosa.stft(mono, n_fft=N_FFT, hop_length=HOP))
    return librosa.amplitude_to_db(magnitude, ref=N_FFT / 4, top_db=90.0)


def before_after_figure(before: np.ndarray, after: np.ndarray, sample_rate: int, path: str | Path,
                        title: str = "") -> Path:
    """Two stacked spectrograms (log frequency, dB) of ``before`` and ``after`` (channels, samples), as a PNG."""
    import librosa.display
    import matplotlib
    matplotlib.use("Agg")  # files only, no screen
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(2, 1, figsize=(8, 5), sharex=True, constrained_layout=True)
    for ax, audio, label in ((axes[0], before, "before"), (axes[1], after, "after")):
        image = librosa.display.specshow(spectrogram_db(audio), sr=sample_rate, hop_length=HOP, x_axis="time",
                                         y_axis="log", ax=ax, vmin=-90, vmax=0, cmap="magma")
        ax.set_title(f"{title} — {label}" if title else label, fontsize=10)
        ax.label_outer()
    figure.colorbar(image, ax=axes, format="%+.0f dB", shrink=0.8)
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=80)
    plt.close(figure)
    return path
