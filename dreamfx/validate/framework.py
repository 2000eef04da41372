"""The validator's frame: what is validated (Subject), a check and its outcome, the context the checks share
(the effect built once, its test signals and renders), and helpers.  Checks register themselves with
``@check(group, strictness)``; :mod:`dreamfx.validate.battery` runs them in the order they were registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dreamfx.errors import DreamfxError
from dreamfx.plugin.chain import Chain
from dreamfx.plugin.effect import DreamEffect
from dreamfx.recipe import validate_preset


SAMPLE_RATES = (8000, 22050, 44100, 48000, 88200, 96000, 192000)
BLOCK_SIZES = (1, 32, 64, 100, 256, 511, 1024, 4096, 16384)
CHANNEL_COUNTS = (1, 2, 6)
PEAK_HEADROOM_DB = 6.0          # output peak may exceed the input's by this much
SILENCE_DBFS = -120.0           # silence in -> silence out below this
SMOOTH_SNR_DB = 60.0            # perturbation SNR under 1e-7 input noise (issue 13's bound)
CHANNEL_SNR_DB = 60.0           # identical channels in -> identical channels out, within rounding
AUTOMATION_STEP_RATIO = 2.0     # largest second difference under automation / largest of the static renders


@dataclass
class Subject:
    """What the battery hammers.

    build: a fresh effect (a Chain or a DreamEffect) in its saved state.
    sample_rates: the rates it runs at (an exported graph: its own); the first
    one the others check at.  model_file / preset_file: the files the file
    checks damage; open_model / open_preset: how those files are opened.
    """

    name: str
    kind: str                                   # "preset", "model" or "export"
    build: Callable[[], Chain | DreamEffect]
    sample_rates: tuple[int, ...] = (44100,) + tuple(r for r in SAMPLE_RATES if r != 44100)
    model_file: Path | None = None
    preset_file: Path | None = None
    open_model: Callable[[Path], object] = DreamEffect
    open_preset: Callable[[Path], object] = validate_preset

    @property
    def sample_rate(self) -> int:
        return self.sample_rates[0]


@dataclass
class Outcome:
    subject: str
    check: str
    group: str
    passed: bool
    figure: str
    seconds: float

    def line(self) -> str:
        return f"{'pass' if self.passed else 'FAIL'}  {self.subject:<24} {self.check:<22} {self.figure}"


class CheckFailed(Exception):
    """Raised inside a check with the figure that failed it."""


@dataclass
class Check:
    name: str
    group: str
    strictness: int
    run: Callable[[Context], str]         # returns the figure; raises CheckFailed
    applies: Callable[[Subject], bool]


CHECKS: list[Check] = []


def check(group: str, strictness: int, applies: Callable[[Subject], bool] = lambda subject: True):
    """Register the decorated function as a check named after it (underscores become dashes)."""
    def register(run):
        CHECKS.append(Check(run.__name__.replace("_", "-"), group, strictness, run, applies))
        return run
    return register


def expect(condition: bool, figure: str) -> None:
    if not condition:
        raise CheckFailed(figure)


# --- what the checks share ----------------------------------------------------------------------------
class Context:
    """One subject under test: its effect (built once), its test signals and the renders checks share."""

    def __init__(self, subject: Subject, strictness: int, seconds: float | None):
        self.subject, self.strictness = subject, strictness
        self.effect = subject.build()
        self.sr = subject.sample_rate
        self.rng = np.random.default_rng(0)
        # Long enough for two chunks past the latency, and at least ``seconds``.
        self.samples = max(int((seconds or 0) * self.sr), self.latency() + 2 * self.chunk_samples())
        self._renders: dict[str, tuple[np.ndarray, np.ndarray]] | None = None

    def build(self) -> Chain | DreamEffect:
        return self.subject.build()

    def dreams(self, effect=None) -> list[DreamEffect]:
        effect = self.effect if effect is None else effect
        return effect.dream_effects if isinstance(effect, Chain) else [effect]

    def latency(self, sample_rate: int | None = None) -> int:
        return self.effect.latency_samples(sample_rate or self.sr)

    def chunk_samples(self, sample_rate: int | None = None) -> int:
        return max(d.chunk_frames * d.spec.stft_for(sample_rate or self.sr).hop for d in self.dreams())

    def noise(self, channels: int = 2, samples: int | None = None, sample_rate: int | None = None) -> np.ndarray:
        n = samples or self.samples * (sample_rate or self.sr) // self.sr
        return (self.rng.standard_normal((channels, n)) * 0.1).astype(np.float32)

    def signals(self) -> dict[str, np.ndarray]:
        """The test signals, stereo, ``samples`` long: noise, silence, square, DC, impulses, sweep."""
        n, sr = self.samples, self.sr
        t = np.arange(n) / sr
        impulses = np.zeros(n, np.float32)
        impulses[::sr // 10] = 1.0
        sweep = 0.5 * np.sin(2 * np.pi * 20 * (0.45 * sr / 20) ** (t / t[-1]) * t[-1] / np.log(0.45 * sr / 20))
        mono = {"silence": np.zeros(n), "square": np.sign(np.sin(2 * np.pi * 100 * t) + 1e-9),
                "dc": np.full(n, 0.5), "impulses": impulses, "sweep": sweep}
        noise = np.random.default_rng(1).standard_normal((2, n)).astype(np.float32) * 0.1
        signals = {"noise": noise}  # the same noise whichever checks ran before
        signals.update({k: np.tile(v.astype(np.float32), (2, 1)) for k, v in mono.items()})
        return signals

    def renders(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """signal name -> (input, offline output)."""
        if self._renders is None:
            self._renders = {name: (x, self.effect(x, self.sr)) for name, x in self.signals().items()}
        return self._renders


def stream(effect, audio: np.ndarray, sample_rate: int, blocks: int | list[int]) -> np.ndarray:
    """``effect`` fed ``audio`` (channels, n) from a reset state in blocks of ``blocks`` samples (or these
    sizes, the last repeated), reset=False: the streaming output, delayed by the latency."""
    effect.reset()
    sizes = [blocks] if isinstance(blocks, int) else list(blocks)
    out, pos = [], 0
    while pos < audio.shape[-1]:
        size = sizes.pop(0) if len(sizes) > 1 else sizes[0]
        out.append(effect(audio[..., pos:pos + size], sample_rate, reset=False))
        pos += size
    return np.concatenate(out, axis=-1)


def one_line_error(action: Callable[[], object]) -> str | None:
    """The message of the one-line DreamfxError ``action`` raises; None when it raises nothing.  Any other
    exception, or a message of several lines, fails the check."""
    try:
        action()
    except DreamfxError as exc:
        message = str(exc)
        expect("\n" not in message and message.strip() != "", f"error of several lines: {message[:200]!r}")
        return message
    except Exception as exc:  # noqa: BLE001 - anything but a DreamfxError is what the check reports
        raise CheckFailed(f"raised {type(exc).__name__}, not a one-line DreamfxError: {str(exc)[:160]}") from None
    return None


def max_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).max()) if a.size else 0.0

