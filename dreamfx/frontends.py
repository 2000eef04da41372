"""Fixed, differentiable first layers that turn a linear log-magnitude STFT into model features.

Every frontend takes ``logmag`` (batch, n_bins, frames), the natural log of the
linear STFT magnitude (see :func:`dreamfx.spectral.log_magnitude`), so the
dream's gradient always lands on linear STFT bins.  Frontends are built for one
sample rate / FFT size with :meth:`configure`; their filter matrices are
derived buffers, never saved with the weights.
"""

from __future__ import annotations

import warnings

import librosa
import numpy as np
import torch
from torch import nn

from dreamfx.spectral import LOG_EPS


class MelInTheLoop(nn.Module):
    """Mel projection of the linear magnitude, then log: (B, n_bins, T) -> (B, n_mels, T).

    The filterbank spans ``fmin..fmax`` Hz at whatever sample rate the audio
    has; bands above the audio's Nyquist frequency stay empty (silence to the
    model) instead of forcing a resample.
    """

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

    def forward(self, logmag: torch.Tensor) -> torch.Tensor:
        if self.filterbank.shape[1] != logmag.shape[-2]:
            raise ValueError(f"frontend built for {self.filterbank.shape[1]} bins, got {logmag.shape[-2]}: "
                             "call model.configure(sample_rate) for this audio's sample rate")
        mel = torch.matmul(self.filterbank, torch.exp(logmag))
        return torch.log(mel + LOG_EPS)


FRONTENDS = {"mel_in_the_loop": MelInTheLoop}
