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


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only, no screen
    import matplotlib.pyplot as plt
    return plt


def _spectrograms(axes, before: np.ndarray, after: np.ndarray, sample_rate: int, title: str):
    """Draw before/after spectrograms (log frequency, dB) into two axes; returns the image for a colorbar."""
    import librosa.display
    for ax, audio, label in ((axes[0], before, "before"), (axes[1], after, "after")):
        image = librosa.display.specshow(spectrogram_db(audio), sr=sample_rate, hop_length=HOP, x_axis="time",
                                         y_axis="log", ax=ax, vmin=-90, vmax=0, cmap="magma")
        ax.set_title(f"{title} — {label}" if title else label, fontsize=10)
    return image


def _save(figure, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=80)
    _pyplot().close(figure)
    return path


def before_after_figure(before: np.ndarray, after: np.ndarray, sample_rate: int, path: str | Path,
                        title: str = "") -> Path:
    """Two stacked spectrograms of ``before`` and ``after`` (channels, samples), as a PNG."""
    figure, axes = _pyplot().subplots(2, 1, figsize=(8, 5), sharex=True, constrained_layout=True)
    image = _spectrograms(axes, before, after, sample_rate, title)
    axes[0].label_outer()
    figure.colorbar(image, ax=axes, format="%+.0f dB", shrink=0.8)
    return _save(figure, path)


def dream_figure(before: np.ndarray, after: np.ndarray, sample_rate: int, gains: np.ndarray, gain_label: str,
                 path: str | Path, title: str = "") -> Path:
    """Input and dreamed spectrograms, and the objective's gain over the iterations, as a PNG.

    gains: (chunks, iterations) gain of the objective at each iteration relative to the first, per chunk.
    """
    figure = _pyplot().figure(figsize=(9, 7.5), constrained_layout=True)
    grid = figure.add_gridspec(3, 1, height_ratios=(1, 1, 0.8))
    axes = [figure.add_subplot(grid[0]), figure.add_subplot(grid[1])]
    image = _spectrograms(axes, before, after, sample_rate, title)
    figure.colorbar(image, ax=axes, format="%+.0f dB", shrink=0.8)
    curve = figure.add_subplot(grid[2])
    steps = np.arange(gains.shape[1])
    curve.fill_between(steps, np.percentile(gains, 10, axis=0), np.percentile(gains, 90, axis=0), alpha=0.3,
                       label="10th-90th percentile of chunks")
    curve.plot(steps, np.median(gains, axis=0), marker="o", label="median chunk")
    curve.set_xlabel("iteration")
    curve.set_ylabel(gain_label)
    curve.set_title("the objective over the dream's iterations", fontsize=10)
    curve.legend(fontsize=8)
    return _save(figure, path)
