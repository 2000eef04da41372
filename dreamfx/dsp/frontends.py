"""Fixed, differentiable first layers that turn a linear log-magnitude STFT into model features.

Every frontend takes ``logmag`` (batch, n_bins, frames), the natural log of the
linear STFT magnitude (see :func:`dreamfx.dsp.spectral.log_magnitude`), and has a
hand-written :meth:`backward` (features gradient -> logmag gradient) for the
exported dream step.  Frontends are built for one sample rate / FFT size with
:meth:`configure`; their matrices are derived buffers, never saved with the
weights.  ``dream_domain`` says where the dream's change is made:

* ``mel_in_the_loop``: log-mel features; the dream changes the *linear* bins
  through the mel projection (dreamfx's answer to the catch-22).
* ``linear``: the linear bins themselves are the features.
* ``compressed_mel_power``: musicnn's log-compressed mel power, at its frame
  rate; the dream changes the linear bins (the ported taggers).
* ``mel``: the seed's way: the model's input is the log-mel image and the dream
  changes that image; the audio is rebuilt by inverting mel -> linear.

``mel`` and ``mel_in_the_loop`` compute the same features (so the same
classifier); they differ only in where the gradient lands.
"""

from __future__ import annotations

import warnings

import librosa
import numpy as np
import torch
from torch import nn

from dreamfx.dsp.spectral import LOG_EPS


class MelInTheLoop(nn.Module):
    """Mel projection of the linear magnitude, then log: (B, n_bins, T) -> (B, n_mels, T).

    The filterbank spans ``fmin..fmax`` Hz at whatever sample rate the audio
    has; bands above the audio's Nyquist frequency stay empty (silence to the
    model) instead of forcing a resample.
    """

    dream_domain = "linear"

    def __init__(self, n_mels: int, fmin: float, fmax: float):
        super().__init__()
        self.n_mels, self.fmin, self.fmax = n_mels, fmin, fmax
        self.register_buffer("filterbank", torch.zeros(n_mels, 0), persistent=False)

    @property
    def n_features(self) -> int:
        return self.n_mels

    def configure(self, sample_rate: int, n_fft: int) -> None:
        with warnings.catch_warnings():  # empty bands above Nyquist are expected at low rates
            warnings.simplefilter("ignore", UserWarning)
            fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=self.n_mels, fmin=self.fmin,
                                     fmax=self.fmax, dtype=np.float32)
        self.filterbank = torch.from_numpy(fb).to(self.filterbank.device)

    def _check(self, logmag: torch.Tensor) -> None:
        if self.filterbank.shape[1] != logmag.shape[-2]:
            raise ValueError(f"frontend built for {self.filterbank.shape[1]} bins, got {logmag.shape[-2]}: "
                             "call model.configure(sample_rate) for this audio's sample rate")

    def forward(self, logmag: torch.Tensor) -> torch.Tensor:
        self._check(logmag)
        return torch.log(torch.matmul(self.filterbank, torch.exp(logmag)) + LOG_EPS)

    def backward(self, logmag: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """d objective / d logmag (B, n_bins, T) from d objective / d features (B, n_mels, T)."""
        power = torch.exp(logmag)
        mel = torch.matmul(self.filterbank, power) + LOG_EPS
        return torch.matmul(self.filterbank.t(), grad / mel) * power


class CompressedMelPower(MelInTheLoop):
    """musicnn's input, computed from the engine's STFT: (B, n_bins, T) -> (B, n_mels, T // frame_step).

    ``log10(1 + compression * mel power)``, where the power is the magnitude on
    librosa's unnormalised scale at the reference FFT size (the engine's
    spectra are divided by the window's sum; ``magnitude_scale``, the window
    sum at the reference size, multiplies it back) and the filterbank is
    librosa's Slaney mel (``fmin..fmax`` Hz, built for the audio's own rate).
    The model hears every ``frame_step``-th frame, the last of each group: a
    4x-overlap STFT (hop n_fft/4, as the engine's overlap-add needs) at
    musicnn's window length reaches the model at musicnn's own frame rate
    (hop n_fft/2, 62.5 frames/s), each frame centred where musicnn's is.
    Averaging the frames of a group instead cost tag agreement with musicnn
    (rank correlation 0.94 against 0.99 for this choice; BENCHMARKS.md).
    The other frames still change: the dream's gradient smoothing spreads the
    change across time.
    """

    dream_domain = "linear"

    def __init__(self, n_mels: int, fmin: float, fmax: float, magnitude_scale: float, compression: float,
                 frame_step: int):
        super().__init__(n_mels, fmin, fmax)
        self.magnitude_scale, self.compression, self.frame_step = magnitude_scale, compression, frame_step

    def _heard(self, logmag: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(power of the heard frames (B, n_bins, T // frame_step), their mel power (B, n_mels, T // frame_step))."""
        self._check(logmag)
        b, n, t = logmag.shape
        heard = logmag.reshape(b, n, t // self.frame_step, self.frame_step)[..., -1]
        power = torch.exp(2 * heard) * self.magnitude_scale ** 2
        return power, torch.matmul(self.filterbank, power)

    def forward(self, logmag: torch.Tensor) -> torch.Tensor:
        return torch.log10(self.compression * self._heard(logmag)[1] + 1)

    def backward(self, logmag: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """d objective / d logmag (B, n_bins, T) from d objective / d features (B, n_mels, T // frame_step)."""
        power, mel = self._heard(logmag)
        g_mel = grad * self.compression / ((self.compression * mel + 1) * float(np.log(10)))
        g_heard = 2 * torch.matmul(self.filterbank.t(), g_mel) * power       # (B, n_bins, T // frame_step)
        b, n, t = g_heard.shape
        last = (torch.arange(self.frame_step, device=grad.device) == self.frame_step - 1).to(grad.dtype)
        return (g_heard[..., None] * last).reshape(b, n, t * self.frame_step)


class MelImage(MelInTheLoop):
    """The seed's mel frontend: the same log-mel features, but the dream changes the mel image itself."""

    dream_domain = "mel"


class LinearBins(nn.Module):
    """The linear log-magnitude bins up to the reference Nyquist frequency: (B, n_bins, T) -> (B, n_features, T).

    Bin spacing is the same at every sample rate (the STFT keeps its frame
    duration), so bin k is the same frequency everywhere; bins the audio's rate
    lacks read as silence (log of LOG_EPS), bins above the reference are dropped.
    """

    dream_domain = "linear"

    def __init__(self, n_bins: int):
        super().__init__()
        self.n_bins = n_bins
        self.register_buffer("selection", torch.zeros(n_bins, 0), persistent=False)
        self.register_buffer("missing", torch.zeros(n_bins, 1), persistent=False)

    @property
    def n_features(self) -> int:
        return self.n_bins

    def configure(self, sample_rate: int, n_fft: int) -> None:
        bins_in = n_fft // 2 + 1
        kept = min(bins_in, self.n_bins)
        selection = torch.zeros(self.n_bins, bins_in)
        selection[torch.arange(kept), torch.arange(kept)] = 1
        missing = torch.zeros(self.n_bins, 1)
        missing[kept:] = float(np.log(LOG_EPS))
        self.selection, self.missing = selection.to(self.selection.device), missing.to(self.missing.device)

    def forward(self, logmag: torch.Tensor) -> torch.Tensor:
        if self.selection.shape[1] != logmag.shape[-2]:
            raise ValueError(f"frontend built for {self.selection.shape[1]} bins, got {logmag.shape[-2]}: "
                             "call model.configure(sample_rate) for this audio's sample rate")
        return torch.matmul(self.selection, logmag) + self.missing

    def backward(self, logmag: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.selection.t(), grad)


class Features(nn.Module):
    """No projection: the input already is the features (the view :func:`mel_image_view` dreams on)."""

    dream_domain = "linear"

    def __init__(self, n_features: int):
        super().__init__()
        self._n_features = n_features

    @property
    def n_features(self) -> int:
        return self._n_features

    def configure(self, sample_rate: int, n_fft: int) -> None:
        pass

    def forward(self, logmag: torch.Tensor) -> torch.Tensor:
        return logmag

    def backward(self, logmag: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return grad


FRONTENDS = {"mel_in_the_loop": MelInTheLoop, "mel": MelImage, "linear": LinearBins, "features": Features,
             "compressed_mel_power": CompressedMelPower}
