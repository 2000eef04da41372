"""Windowed STFT analysis and overlap-add resynthesis, offline and streaming.

Framing convention (shared by training, the engine and the metrics): the signal
is preceded by ``n_fft - hop`` zeros and frame ``j`` covers padded samples
``[j*hop, j*hop + n_fft)``, i.e. frames are *not* centred and every input
sample is covered by ``n_fft / hop`` frames.  A periodic Hann window with
``hop = n_fft / 4`` is used for analysis and synthesis; its squared shifts sum
to the constant 1.5, so analysis followed by synthesis is the identity.

Spectra are scaled by ``1 / sum(window)``: a full-scale sine has magnitude 0.5
at any sample rate.  ``torch.istft`` resynthesises a whole signal at once, so
streaming synthesis is a small explicit overlap-add (:class:`OverlapAdd`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

LOG_EPS = 1e-5  # floor added to magnitudes before the log (-100 dB)
OVERLAP = 4     # n_fft / hop


@dataclass(frozen=True)
class StftConfig:
    """STFT sizes at one sample rate.

    The model stores its settings at a reference rate; :meth:`for_sample_rate`
    scales them so that frame duration and bin spacing (Hz) stay constant.
    """

    sample_rate: int
    n_fft: int
    hop: int

    def __post_init__(self):
        if self.n_fft != OVERLAP * self.hop:
            raise ValueError(f"n_fft must be {OVERLAP} x hop, got n_fft={self.n_fft}, hop={self.hop}")

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def pad(self) -> int:
        """Zeros before the first sample so that it is covered by every overlap."""
        return self.n_fft - self.hop

    def for_sample_rate(self, sample_rate: int) -> StftConfig:
        hop = max(1, round(self.hop * sample_rate / self.sample_rate))
        return StftConfig(int(sample_rate), OVERLAP * hop, hop)

    def window(self) -> torch.Tensor:
        return torch.hann_window(self.n_fft, periodic=True, dtype=torch.float32)


def stft(audio: torch.Tensor, config: StftConfig, window: torch.Tensor | None = None) -> torch.Tensor:
    """Frames of an already padded signal.

    audio: (..., samples) float32, samples = (T - 1) * hop + n_fft.
    Returns complex64 (..., n_bins, T).
    """
    window = config.window() if window is None else window
    lead = audio.shape[:-1]
    spec = torch.stft(audio.reshape(-1, audio.shape[-1]), config.n_fft, config.hop, window=window,
                      center=False, return_complex=True)
    return (spec / window.sum()).reshape(*lead, *spec.shape[-2:])


def analyze_signal(audio: np.ndarray, config: StftConfig) -> torch.Tensor:
    """STFT of a whole signal with the streaming framing (leading pad, zero tail).

    audio: (..., samples).  Returns complex64 (..., n_bins, ceil(samples / hop)).
    """
    samples = audio.shape[-1]
    n_frames = -(-samples // config.hop)
    total = (n_frames - 1) * config.hop + config.n_fft
    padded = np.zeros(audio.shape[:-1] + (total,), dtype=np.float32)
    padded[..., config.pad:config.pad + samples] = audio
    return stft(torch.from_numpy(padded), config)


def log_magnitude(spec: torch.Tensor) -> torch.Tensor:
    """Natural-log magnitude with the :data:`LOG_EPS` floor; same shape as ``spec``."""
    return torch.log(spec.abs() + LOG_EPS)


class OverlapAdd:
    """Streaming inverse STFT: windowed inverse FFT of each frame, overlap-added.

    Each call to :meth:`push` takes K consecutive frames and returns the K*hop
    samples that no later frame touches any more.
    """

    def __init__(self, config: StftConfig, channels: int):
        self.config = config
        self.window = config.window()
        # Undo the analysis scaling (window sum) and divide by the sum of squared
        # window shifts, sum(w**2) / hop (= 1.5 for Hann at 75 % overlap).
        self.full_overlap = float((self.window ** 2).sum()) / config.hop
        self.scale = float(self.window.sum()) / self.full_overlap
        self.tail = torch.zeros(channels, config.pad)
        self._end_gains: dict[int, torch.Tensor] = {}  # K -> consistent()'s correction of the unfinished end

    def reset(self) -> None:
        self.tail.zero_()

    def synthesize(self, spec: torch.Tensor, tail: torch.Tensor | None = None) -> torch.Tensor:
        """The samples K frames span, (channels, (K - 1) * hop + n_fft), with the earlier frames' tail
        (channels, pad) added (default: this stream's); the state is left as it was."""
        cfg = self.config
        k = spec.shape[-1]
        frames = torch.fft.irfft(spec.transpose(1, 2), n=cfg.n_fft) * (self.window * self.scale)
        out = torch.zeros(spec.shape[0], (k - 1) * cfg.hop + cfg.n_fft)
        out[:, :cfg.pad] = self.tail if tail is None else tail
        for j in range(k):
            out[:, j * cfg.hop:j * cfg.hop + cfg.n_fft] += frames[:, j]
        return out

    def push(self, spec: torch.Tensor) -> torch.Tensor:
        """spec: complex (channels, n_bins, K).  Returns float32 (channels, K * hop)."""
        out = self.synthesize(spec)
        self.tail = out[:, spec.shape[-1] * self.config.hop:].clone()
        return out[:, :spec.shape[-1] * self.config.hop]

    def consistent(self, spec: torch.Tensor, tail: torch.Tensor | None = None) -> torch.Tensor:
        """What the K frames (channels, n_bins, K) become once overlap-added and re-analysed: complex
        (channels, n_bins, K).  The samples no later frame has reached yet are divided by the part of the
        window overlap present (as a consistent continuation would give), not left faded."""
        return stft(self.synthesize(spec, tail) * self._end_gain(spec.shape[-1]), self.config, self.window)

    def _end_gain(self, k: int) -> torch.Tensor:
        """((K - 1) * hop + n_fft,) full / present window overlap of K frames after the earlier frames' tail
        (1 but at the end; at most 4), computed once per K."""
        if k not in self._end_gains:
            cfg = self.config
            envelope = torch.zeros((k - 1) * cfg.hop + cfg.n_fft)
            for j in range(-(cfg.n_fft // cfg.hop) + 1, k):
                start = j * cfg.hop
                envelope[max(start, 0):start + cfg.n_fft] += self.window[max(-start, 0):].square()
            self._end_gains[k] = self.full_overlap / envelope.clamp_min(0.25 * self.full_overlap)
        return self._end_gains[k]

    def refine_phase(self, spec: torch.Tensor, iterations: int) -> torch.Tensor:
        """Griffin-Lim iterations on the chunk's frames (channels, n_bins, K): keep their magnitudes, take the
        phase of the re-analysed resynthesis (earlier frames, already played, stay fixed).  Without look-ahead,
        as in real-time iterative spectrogram inversion."""
        magnitude = spec.abs()
        for _ in range(iterations):
            spec = torch.polar(magnitude, stft(self.synthesize(spec), self.config, self.window).angle())
        return spec
