"""The streaming dream engine: STFT -> chunked dreaming -> overlap-add, for any block size.

Input samples are collected until ``chunk_frames`` new hops are complete; that
chunk is analysed, dreamed together with ``context_frames`` earlier frames,
resynthesised, and its finished samples are queued.  Every call returns as
many samples as it was given, delayed by exactly :attr:`DreamEngine.latency`
samples.  The work done on a chunk never depends on how the host sliced the
audio, so any block size gives the same output, and :meth:`render` (offline,
latency-compensated) is this same loop run over the whole file.

The model sees the new frames after ``context_frames`` frames of *dry* input:
each chunk's dream depends on the input alone, never on earlier dreams, so a
difference in one chunk (a float rounding on another backend, an overloaded
worker falling back to dry) cannot grow from chunk to chunk.  ``memory``
blends each chunk's own change with the previous chunk's (temporal coherence,
an exponential smoothing over chunks): a linear recurrence of gain
``memory`` < 1, so a difference fades from chunk to chunk.  (Starting each
ascent from the previous change instead made the dream a chaotic recurrence:
1e-7 of input noise moved the output by -10 dB; BENCHMARKS.md.)

With ``settings.offline_batch`` > 1 (offline only: no deadline), the dreams of
the chunks a call completes are computed ahead, up to ``offline_batch`` at a
time in one batch through the network: they depend on the dry input alone, so
only the order of the work changes; overlap-add, memory and phase refinement
still run chunk by chunk.  With ``jitter`` each chunk draws its own window
shifts (the chunks of equal shift run together at each iteration).  Chunks
with ``consistency`` (the projection starts from the previous chunk's output)
are dreamed at their turn.  A batch rounds differently from one chunk (torch's
convolutions choose their algorithm by batch size), so a batched render equals
the streaming one within float rounding, not bit for bit: ``offline_batch`` 1
(the default) keeps them identical.

Channels are dreamed *linked*: one dream on the downmix, whose spectral gain
is applied to every channel, so the stereo image stays put and the cost does
not grow with the channel count.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from dreamfx.engine.backends import GraphBackend, TorchBackend
from dreamfx.dream.ascent import Objective, Transforms, dream, level_preserved
from dreamfx.dsp.canvas import canvas_samples, frame_energy, span_frames
from dreamfx.dsp.ringbuffer import RingBuffer
from dreamfx.dsp.spectral import LOG_EPS, OverlapAdd, StftConfig, stft


@dataclass
class DreamSettings:
    """Dream parameters read at the start of every chunk (validated by DreamEffect)."""

    intensity: float = 1.0      # 0..1, scales the log-magnitude change; 0 = exact bypass
    iterations: int = 8         # gradient-ascent steps per chunk
    step: float = 0.1           # step size, natural-log magnitude units per iteration
    mix: float = 1.0            # 0..1 wet/dry, applied in the spectral domain
    seed: int = 0               # seeds the jitter of each chunk
    jitter: int = 0             # max random time roll of the window, frames
    max_gain_db: float = 12.0   # bound on the change of any bin, dB
    smooth_bins: int = 2        # gradient smoothing across frequency, +- bins
    smooth_frames: int = 1      # gradient smoothing across time, +- frames
    octaves: int = 1            # coarse-to-fine stages of gradient smoothing
    memory: float = 0.0         # weight of the previous chunk's change in the next chunk's (smoothing)
    reconstruction: str = "input-phase"  # or "phase-refine": Griffin-Lim iterations within each chunk
    phase_iterations: int = 8   # iterations of "phase-refine"
    consistency: bool = False   # project each iteration's change onto what overlap-add delivers
    preserve_level: bool = True # keep each frame's energy (timbre change, not level change)
    band_hz: tuple[float, float] = (0.0, float("inf"))  # the band the dream may change, Hz
    canvas_db: float | None = None  # faint noise this many dB under the input, for the dream to paint on
    canvas_slope: float = 1.0   # the canvas's power falls as 1 / f ** slope: 1 pink, 2 brown
    offline_batch: int = 1      # offline: chunks dreamed in one batch (1: chunk by chunk, as streaming)
    objective: Objective = field(default_factory=Objective)
    transforms: Transforms = field(default_factory=Transforms)  # the gradient's random transforms (torch backend)


@dataclass
class EngineStats:
    chunks: int = 0              # chunks processed
    dreamed_chunks: int = 0      # chunks on which the dream ran
    batched_chunks: int = 0      # offline: chunks whose dream ran in a batch of several
    fallback_chunks: int = 0     # chunks whose dream was not finite and were passed dry
    nonfinite_blocks: int = 0    # input blocks that held NaN/Inf (zeroed)
    reduced_chunks: int = 0      # live: the deadline allowed fewer iterations than asked
    deadline_dry_chunks: int = 0  # live: the deadline allowed none, the chunk passed dry
    last_iterations: int = 0     # iterations run on the latest chunk


@dataclass
class ChunkReport:
    """What one chunk did, for metrics: magnitudes of the model's window (1, n_bins, C + K)."""

    index: int
    dry: torch.Tensor
    dreamed: torch.Tensor


@dataclass
class PlannedChunk:
    """A chunk whose dream was computed ahead (offline batching): what its turn needs."""

    settings: DreamSettings      # its parameters, after its before_chunk hooks ran
    spec: torch.Tensor           # (channels, n_bins, K) complex STFT of its new frames
    delta: torch.Tensor | None   # (1, n_bins, K) its dream's change of log-magnitude; None: dream at its turn


@dataclass
class CanvasState:
    """What the next chunk's canvas continues from."""

    energies: torch.Tensor       # (1, 1, span) the input's frame energies before it
    tail: np.ndarray             # (pad,) the canvas's last samples, which its first frames overlap


def stream_latency(stft: StftConfig, chunk_frames: int) -> int:
    """Samples from an input sample to its output sample: a chunk's wait plus the STFT overlap."""
    return chunk_frames * stft.hop - 1 + stft.pad


def mel_to_linear(filterbank: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
    """Linear magnitudes (1, n_bins, K) whose mel projection best matches ``mel`` (1, n_mels, K): non-negative
    least squares, as librosa.feature.inverse.mel_to_stft does."""
    import librosa
    return torch.from_numpy(librosa.util.nnls(filterbank.numpy(), mel[0].numpy().astype(np.float32)))[None]


def band_weights(stft: StftConfig, band_hz: tuple[float, float], taper_octaves: float = 1 / 3) -> torch.Tensor:
    """(n_bins,) weights in 0..1: 1 inside band_hz, falling (cosine) to 0 over ``taper_octaves`` outside it."""
    freqs = torch.arange(stft.n_bins, dtype=torch.float64) * stft.sample_rate / stft.n_fft
    low, high = band_hz
    below = torch.log2(low / freqs.clamp_min(1e-9)).clamp_min(0) if low > 0 else torch.zeros_like(freqs)
    above = torch.log2(freqs / high).clamp_min(0) if high < float("inf") else torch.zeros_like(freqs)
    outside = (torch.maximum(below, above) / taper_octaves).clamp(max=1)
    return torch.cos(0.5 * torch.pi * outside).square().float()


class DreamEngine:
    """Streaming dream for one sample rate and channel count.

    backend: where the iterations run (:func:`dreamfx.engine.backends.open_backend`),
    prepared here for ``sample_rate``.
    settings: DreamSettings, shared with the caller and read per chunk.
    """

    def __init__(self, backend: TorchBackend | GraphBackend, settings: DreamSettings, sample_rate: int,
                 channels: int, *, chunk_frames: int = 8, context_frames: int = 24):
        self.backend, self.device = backend, backend.device
        self.stft = backend.prepare(sample_rate)
        self.settings = settings
        self.channels, self.chunk_frames, self.context_frames = channels, chunk_frames, context_frames
        cfg = self.stft
        self.chunk_samples = chunk_frames * cfg.hop
        self.canvas_span = span_frames(cfg.hop / cfg.sample_rate)
        self.window = cfg.window()
        self.input = np.zeros((channels, cfg.pad + self.chunk_samples), dtype=np.float32)
        self.output = RingBuffer(channels, 2 * self.chunk_samples)
        self.ola = OverlapAdd(cfg, channels)
        self.on_chunk: Callable[[ChunkReport], None] | None = None
        # Called with the chunk index before each chunk is dreamed (MIDI, automation): parameter changes
        # land on the same chunk live and offline.
        self.before_chunk: list[Callable[[int], None]] = []
        self.deadline: float | None = None  # live: time.perf_counter() by which the next chunk's dream must end
        # When a dict: chunk index -> the objective before each iteration (dreamfx visualize).
        self.objective_trace: dict[int, list[float]] | None = None
        self.iteration_seconds = 0.0       # running estimate of one iteration's time
        self.reset()

    @property
    def chunk_wait(self) -> int:
        """The part of the latency that lets any block size come back at once: a chunk's wait, samples."""
        return self.chunk_samples - 1

    @property
    def latency(self) -> int:
        """Samples between an input sample and the output sample it becomes."""
        full = stream_latency(self.stft, self.chunk_frames)
        return full - self.chunk_wait if self.whole_chunks else full

    def take_whole_chunks(self) -> None:
        """From now until the next reset, accept only whole chunks from a chunk boundary, and drop the
        (chunk - 1)-sample wait that lets any block size come back at once: latency becomes the STFT
        overlap alone.  For a caller that already waits for whole chunks (the live worker)."""
        if self.filled or self.chunk_index or self.whole_chunks:
            raise RuntimeError("take_whole_chunks() must follow reset()")
        self.output.skip(self.chunk_wait)
        self.whole_chunks = True

    def reset(self) -> None:
        """Forget all audio; parameters are kept, ramps restart at their targets."""
        self.input[:] = 0
        self.filled = 0
        self.output.clear()
        self.output.write(np.zeros((self.channels, self.chunk_wait), dtype=np.float32))
        self.ola.reset()
        empty = torch.zeros(1, self.stft.n_bins, self.context_frames)
        self.context_dry, self.context_out = empty, empty.clone()
        self.canvas_state = self._canvas_start()
        self.planned: dict[int, PlannedChunk] = {}     # chunk index -> its dream, computed ahead
        self.ramp_from = (self.settings.intensity, self.settings.mix)
        self.previous_delta: torch.Tensor | None = None
        self.chunk_index = 0
        self.emitted = 0          # samples returned since the reset; the first `latency` precede the input: silence
        self.whole_chunks = False
        self.stats = EngineStats()

    def process(self, block: np.ndarray) -> np.ndarray:
        """block: float32 (channels, n), any n. Returns (channels, n), delayed by :attr:`latency`."""
        if self.whole_chunks and block.shape[1] % self.chunk_samples:
            raise ValueError(f"this engine takes whole chunks of {self.chunk_samples} samples, got {block.shape[1]}")
        if not np.isfinite(block).all():
            block = np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)
            self.stats.nonfinite_blocks += 1
        if self.settings.offline_batch > 1 and self.deadline is None and self.objective_trace is None:
            self._plan(block)
        out = np.empty((self.channels, block.shape[1]), dtype=np.float32)
        pad, pos = self.stft.pad, 0
        while pos < block.shape[1]:
            take = min(block.shape[1] - pos, self.chunk_samples - self.filled)
            self.input[:, pad + self.filled:pad + self.filled + take] = block[:, pos:pos + take]
            self.filled += take
            if self.filled == self.chunk_samples:
                self.output.write(self._process_chunk())
                self.input[:, :pad] = self.input[:, self.chunk_samples:]
                self.filled = 0
            self.output.read_into(out[:, pos:pos + take])
            pos += take
        if self.emitted < self.latency:  # what the dream left before the stream's first sample is not output
            out[:, :self.latency - self.emitted] = 0.0
        self.emitted += block.shape[1]
        return out

    def render(self, audio: np.ndarray, block_size: int = 8192,
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Offline render from a reset state: same length as ``audio``, sample-aligned (latency removed).

        ``progress`` is called with the number of input samples done after each block.
        """
        self.reset()
        n = audio.shape[1]
        padded = np.concatenate([audio, np.zeros((self.channels, self.latency), dtype=np.float32)], axis=1)
        out = np.empty_like(padded)
        for i in range(0, padded.shape[1], block_size):
            out[:, i:i + block_size] = self.process(padded[:, i:i + block_size])
            if progress is not None:
                progress(min(i + block_size, n))
        return out[:, self.latency:self.latency + n]

    def _plan(self, block: np.ndarray) -> None:
        """Dream ahead, in batches, the chunks that ``block`` (channels, n) completes (see the module doc):
        each one's hooks run and its parameters are kept, its STFT is taken, and its dream (where it runs and
        does not need the earlier output) is computed with the others of the same dream parameters."""
        cfg, c = self.stft, self.context_frames
        n_chunks = (self.filled + block.shape[1]) // self.chunk_samples
        if n_chunks < 2:
            return
        audio = np.concatenate([self.input[:, :cfg.pad + self.filled],
                                block[:, :n_chunks * self.chunk_samples - self.filled]], axis=1)
        context, ramp, canvas_state = self.context_dry, self.ramp_from, self.canvas_state
        batches: dict[tuple, list] = {}  # dream parameters -> [(chunk index, window)]
        for j in range(n_chunks):
            index = self.chunk_index + j
            for hook in self.before_chunk:
                hook(index)
            settings = copy.copy(self.settings)
            if index == 0:
                ramp = (settings.intensity, settings.mix)
            spec = stft(torch.from_numpy(audio[:, j * self.chunk_samples:(j + 1) * self.chunk_samples + cfg.pad]),
                        cfg, self.window)
            dreams = self._dreams(settings, ramp)
            seen, _, canvas_state = self._canvased(spec, settings, ramp, index, canvas_state)
            window = torch.cat([context, seen.abs()], dim=-1)
            self.planned[index] = PlannedChunk(settings, spec, None)
            if dreams and not settings.consistency:
                key = (settings.iterations, settings.step, settings.max_gain_db, settings.jitter,
                       settings.smooth_bins, settings.smooth_frames, settings.preserve_level, settings.octaves,
                       settings.objective, settings.transforms)
                batches.setdefault(key, []).append((index, window))
            ramp = (settings.intensity, settings.mix)
            context = window[..., -c:]
        for group in batches.values():
            for start in range(0, len(group), self.settings.offline_batch):
                indices, windows = zip(*group[start:start + self.settings.offline_batch])
                settings = self.planned[indices[0]].settings
                rngs = [np.random.default_rng([settings.seed, index]) for index in indices]
                delta, _ = self._dream(settings, self._dream_window(torch.cat(windows)), None, rngs)
                for i, index in enumerate(indices):
                    self.planned[index].delta = delta[i:i + 1]
                self.stats.batched_chunks += len(indices) if len(indices) > 1 else 0

    @staticmethod
    def _dreams(s: DreamSettings, ramp_from: tuple[float, float]) -> bool:
        """Whether a chunk with parameters ``s``, after one with (intensity, mix) ``ramp_from``, is dreamt."""
        (i0, m0), (i1, m1) = ramp_from, (s.intensity, s.mix)
        return not ((i0 == 0 and i1 == 0) or (m0 == 0 and m1 == 0) or s.iterations == 0)

    def _dream_window(self, window: torch.Tensor) -> torch.Tensor:
        """Dry magnitudes (B, n_bins, C + K) in the domain the model dreams, on its device: a mel-image model
        dreams mel magnitudes (B, n_mels, C + K)."""
        mel = self.backend.mel_filterbank
        window = window.to(self.device)
        return window if mel is None else torch.matmul(mel, window)

    def _dream(self, s: DreamSettings, window: torch.Tensor, downmix: torch.Tensor | None,
               rng: np.random.Generator | list[np.random.Generator]) -> tuple[torch.Tensor, int]:
        """The dream of B chunks, windows (B, n, C + K) from :meth:`_dream_window`.  ``downmix``: the new frames'
        complex downmix (1, n_bins, K), for the consistency projection (one chunk at its turn).  Returns (delta
        (B, n, K), iterations run)."""
        mel = self.backend.mel_filterbank
        return dream(self.backend.step_function(s.objective), s.objective.weights(self.backend.spec),
                     window, self.chunk_frames, iterations=s.iterations, step=s.step,
                     max_gain_db=s.max_gain_db, jitter=s.jitter, rng=rng, smooth_bins=s.smooth_bins,
                     smooth_frames=s.smooth_frames, preserve_level=s.preserve_level, octaves=s.octaves,
                     may_continue=self._within_deadline(),
                     trace=None if self.objective_trace is None else self.objective_trace.setdefault(
                         self.chunk_index, []),
                     project=self._projection(downmix) if mel is None and s.consistency else None,
                     transforms=s.transforms)

    def _gain(self, downmix: torch.Tensor, s: DreamSettings, planned: torch.Tensor | None) -> torch.Tensor:
        """Spectral gain (1, n_bins, K) for the new frames' downmix spectrum (1, n_bins, K), complex, with
        parameters ``s``; ``planned``: its dream, when computed ahead."""
        k = self.chunk_frames
        magnitude = downmix.abs()
        (i0, m0), (i1, m1) = self.ramp_from, (s.intensity, s.mix)
        dreams = self._dreams(s, self.ramp_from)
        self.ramp_from = (i1, m1)
        if not dreams:
            return torch.ones_like(magnitude)
        window = self._dream_window(torch.cat([self.context_dry, magnitude], dim=-1))
        if planned is None:
            started = time.perf_counter()
            delta, done = self._dream(s, window, downmix, np.random.default_rng([s.seed, self.chunk_index]))
            self._count_iterations(done, time.perf_counter() - started)
        else:
            delta, done = planned, s.iterations
            self.stats.last_iterations = done
        if done == 0:
            return torch.ones_like(magnitude)
        mel = self.backend.mel_filterbank
        if s.memory and self.previous_delta is not None:
            delta = self._remember(delta, window[..., -k:], s)
        self.previous_delta = delta.mean(dim=-1, keepdim=True)  # (1, n_bins, 1): what dream memory carries on
        self.stats.dreamed_chunks += 1
        intensity = torch.linspace(i0, i1, k + 1)[1:]
        mix = torch.linspace(m0, m1, k + 1)[1:]
        if mel is None:
            change = torch.exp(intensity * delta.cpu())
        else:  # the seed's reconstruction: invert the dreamed mel image to linear magnitudes
            dreamed_mel = (window[..., -k:] * torch.exp(intensity * delta)).cpu()
            change = mel_to_linear(mel.cpu(), dreamed_mel) / (magnitude + LOG_EPS)
        gain = 1 + band_weights(self.stft, s.band_hz)[:, None] * mix * (change - 1)
        if not torch.isfinite(gain).all():
            self.stats.fallback_chunks += 1
            return torch.ones_like(magnitude)
        return gain

    def _canvas_start(self) -> CanvasState:
        """The canvas's state before the first chunk: silence."""
        return CanvasState(torch.zeros(1, 1, self.canvas_span), np.zeros(self.stft.pad, dtype=np.float32))

    def _canvased(self, spec: torch.Tensor, s: DreamSettings, ramp_from: tuple[float, float], index: int,
                  state: CanvasState) -> tuple[torch.Tensor, torch.Tensor | None, CanvasState]:
        """Chunk ``index``'s downmix (1, n_bins, K) of its spectrum ``spec`` (channels, n_bins, K) as the dream
        sees it: with the canvas's STFT added when it has one and is dreamt (after (intensity, mix) ``ramp_from``);
        that STFT (else None); the state after the chunk (``state``: before it).  The canvas fades in and out with
        intensity x mix, so intensity 0 still passes the input exactly."""
        downmix = spec.mean(dim=0, keepdim=True)
        energies = torch.cat([state.energies, frame_energy(downmix)], dim=-1)
        later = energies[..., -self.canvas_span:]
        if s.canvas_db is None or not self._dreams(s, ramp_from):
            return downmix, None, CanvasState(later, np.zeros_like(state.tail))
        cfg, k = self.stft, self.chunk_frames
        scale = np.linspace(ramp_from[0] * ramp_from[1], s.intensity * s.mix, k + 1)
        new = canvas_samples(energies, scale, s.canvas_db, s.canvas_slope, cfg.hop, s.seed, index, cfg.sample_rate)
        samples = np.concatenate([state.tail, new])
        painted = stft(torch.from_numpy(samples)[None], cfg, self.window)
        return downmix + painted, painted, CanvasState(later, samples[-cfg.pad:])

    def _remember(self, delta: torch.Tensor, magnitude: torch.Tensor, s: DreamSettings) -> torch.Tensor:
        """This chunk's change (1, n_bins, K) blended with the previous chunk's mean change: ``(1 - memory) * own +
        memory * previous``, then, with ``preserve_level``, level-corrected again (``magnitude``: the new frames
        the dream changed)."""
        delta = (1 - s.memory) * delta + s.memory * self.previous_delta.to(delta.device)
        return level_preserved(magnitude, delta) if s.preserve_level else delta

    def _projection(self, downmix: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """The change of log-magnitude (1, n_bins, K) that overlap-add would deliver for a requested one, after
        the earlier output: the chunk's dream depends on the previous chunk's output, so it is dreamt at its turn
        (never in a batch).  Starting from the dry input's tail instead lowered the default preset's retention
        from 0.97 to 0.93."""
        tail = self.ola.tail.mean(dim=0, keepdim=True)
        log_dry = torch.log(downmix.abs() + LOG_EPS)

        def project(delta: torch.Tensor) -> torch.Tensor:
            wanted = downmix * torch.exp(delta.cpu())
            return (torch.log(self.ola.consistent(wanted, tail).abs() + LOG_EPS) - log_dry).to(delta.device)
        return project

    def _within_deadline(self) -> Callable[[int], bool] | None:
        """None offline (every iteration runs); live, a check that one more iteration ends before the deadline."""
        deadline = self.deadline
        if deadline is None:
            return None
        return lambda done: time.perf_counter() + self.iteration_seconds <= deadline

    def _count_iterations(self, done: int, seconds: float) -> None:
        self.stats.last_iterations = done
        if done:
            per_iteration = seconds / done
            self.iteration_seconds = per_iteration if not self.iteration_seconds else \
                0.8 * self.iteration_seconds + 0.2 * per_iteration
        if done == 0:  # the estimate may be an outlier (a first, cold iteration): let it shrink, and try again
            self.iteration_seconds *= 0.9
            self.stats.deadline_dry_chunks += 1
        elif done < self.settings.iterations:
            self.stats.reduced_chunks += 1

    def _process_chunk(self) -> np.ndarray:
        planned = self.planned.pop(self.chunk_index, None)
        if planned is None:
            for hook in self.before_chunk:
                hook(self.chunk_index)
            settings, delta = self.settings, None
            spec = stft(torch.from_numpy(self.input), self.stft, self.window)  # (channels, n_bins, K)
        else:
            settings, spec, delta = planned.settings, planned.spec, planned.delta
        if self.chunk_index == 0:  # nothing before it to ramp from: values set for the first chunk are where it starts
            self.ramp_from = (settings.intensity, settings.mix)
        downmix, painted, self.canvas_state = self._canvased(spec, settings, self.ramp_from, self.chunk_index,
                                                             self.canvas_state)
        magnitude = downmix.abs()                                                # (1, n_bins, K)
        with torch.no_grad():
            gain = self._gain(downmix, settings, delta)
        dreamed = not torch.all(gain == 1)
        out = spec * gain if painted is None else (spec + painted) * gain
        out_magnitude = magnitude * gain
        if self.on_chunk is not None:
            self.on_chunk(ChunkReport(self.chunk_index, torch.cat([self.context_dry, magnitude], -1),
                                      torch.cat([self.context_out, out_magnitude], -1)))
        c = self.context_frames
        self.context_dry = torch.cat([self.context_dry, magnitude], -1)[..., -c:]
        self.context_out = torch.cat([self.context_out, out_magnitude], -1)[..., -c:]
        self.chunk_index += 1
        self.stats.chunks += 1
        if dreamed and settings.reconstruction == "phase-refine":
            out = self.ola.refine_phase(out, settings.phase_iterations)
        return self.ola.push(out).numpy()
