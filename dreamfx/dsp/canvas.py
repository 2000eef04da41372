"""A canvas for the dream: faint noise under the input, following its level.

The dream is a gain on the input's spectrogram: it can re-weight what sounds, not put partials where nothing
sounds.  A canvas gives it something to paint on in the gaps: noise whose power falls as 1 / f ** ``slope`` above
50 Hz (1: pink, -3 dB per octave; 2: brown, -6 dB per octave) and is ``level_db`` under the input's mean power over
the last ``span`` frames (about 0.1 s, no look-ahead), so it follows the input's loudness, fills the gap just after
a note as much as the note, and silence stays silent.  The steeper the slope, the less noise in the many wide
upper bands, where it blurs the input's onsets most (BENCHMARKS.md, "The canvas's colour").

It is a signal, not frames of noise: the engine adds its STFT, taken like the input's, to the input's, so the
dream and its consistency projection see a spectrogram audio can have.  Its white noise is drawn per chunk from a
generator keyed by (seed, chunk index) and filtered across chunk boundaries, so the same chunk gets the same canvas
in any block size, live or offline.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

SPAN_SECONDS = 0.1      # the canvas follows the input's level over this long
KERNEL_SECONDS = 0.02   # the filter's length
SLOPE_FROM_HZ = 50.0    # the slope starts here, flat below
# A signal of power P has STFT frames of energy 0.75 P (periodic Hann, spectra scaled by 1 / sum(window),
# bins up to Nyquist): dreamfx.dsp.spectral's convention.
FRAME_ENERGY_PER_POWER = 0.75
CANVAS_STREAM = 0xCA    # keeps the canvas's random numbers apart from the jitter's, which are keyed (seed, chunk)


def span_frames(hop_seconds: float) -> int:
    """Frames of the input's level the canvas follows: about 0.1 s."""
    return max(1, round(SPAN_SECONDS / hop_seconds))


def frame_energy(spectrum: torch.Tensor) -> torch.Tensor:
    """(1, 1, K) energy of each frame of ``spectrum`` (1, n_bins, K), complex."""
    return spectrum.abs().square().sum(dim=-2, keepdim=True)


@lru_cache(maxsize=8)
def slope_kernel(sample_rate: int, slope: float) -> np.ndarray:
    """FIR (taps,) that turns white noise of unit variance into noise of unit variance whose power falls as
    1 / f ** ``slope`` above 50 Hz."""
    taps = 2 * round(KERNEL_SECONDS * sample_rate / 2) + 1
    fraction = np.linspace(0.0, 1.0, 513)  # of Nyquist
    gain = (np.maximum(fraction * sample_rate / 2, SLOPE_FROM_HZ) / SLOPE_FROM_HZ) ** (-slope / 2)
    import scipy.signal  # here, not at the top: it takes a second to import, which every start of dreamfx paid
    kernel = scipy.signal.firwin2(taps, fraction, gain)
    return kernel / np.sqrt(np.square(kernel).sum())


def sloped_noise(seed: int, chunk_index: int, samples: int, sample_rate: int, slope: float) -> np.ndarray:
    """(samples,) float64 noise of unit variance, power 1 / f ** ``slope``, for chunk ``chunk_index`` of
    ``samples`` samples."""
    kernel = slope_kernel(sample_rate, slope)
    import scipy.signal  # a lookup: slope_kernel imported it
    earlier = -(-(len(kernel) - 1) // samples)  # chunks of white noise the filter reaches back into
    white = [np.random.default_rng([seed, i, CANVAS_STREAM]).standard_normal(samples) if i >= 0 else
             np.zeros(samples) for i in range(chunk_index - earlier, chunk_index + 1)]
    return scipy.signal.oaconvolve(np.concatenate(white), kernel, mode="valid")[-samples:]


def canvas_samples(energies: torch.Tensor, scale: np.ndarray, level_db: float, slope: float, hop: int, seed: int,
                   chunk_index: int, sample_rate: int) -> np.ndarray:
    """The canvas's K * hop new samples (float32) for the K new frames of chunk ``chunk_index``.

    energies: (1, 1, span + K) :func:`frame_energy` of the input, the span of frames before the chunk then its
    K frames.  scale: (K + 1,) a factor (e.g. a ramp of the dream's intensity) at the frame before the chunk and
    at each of its frames.  The amplitude at each frame's last sample follows the mean power over the span of
    frames ending there (``level_db`` under it), and is interpolated in between; ``slope``: the colour,
    power 1 / f ** slope.
    """
    span = energies.shape[-1] - len(scale) + 1
    power = energies[0, 0].double().unfold(0, span, 1).mean(dim=-1).numpy() / FRAME_ENERGY_PER_POWER  # (K + 1,)
    amplitude = np.sqrt(power * 10 ** (level_db / 10)) * scale
    k = len(scale) - 1
    envelope = np.interp(np.arange(k * hop), np.arange(-1, k) * hop + hop - 1, amplitude)
    return (sloped_noise(seed, chunk_index, k * hop, sample_rate, slope) * envelope).astype(np.float32)
