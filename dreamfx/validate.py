"""``dreamfx validate``: a plugin validator's battery for presets, models and exports (after Tracktion's pluginval).

    subject = subject_for("metal-hallucination")        # a preset, a model (name or file) or an exported graph
    for outcome in run_checks(subject, strictness=5):   # one Outcome per named check: passed, figure
        print(outcome.line())

Each check builds nothing it does not need and measures one promise of the
effect: block sizes and sample rates change nothing but the delay, bad input
never reaches the output, the reported latency is true, parameters validate
what they are given, state survives a preset's save and load, damaged files
are refused in one line.  Checks carry a strictness (1..10, like pluginval):
a run at strictness N runs every check of strictness <= N, and some checks
try more cases as N grows.  Audio checks are in this module; the damaged-file
checks are in :mod:`dreamfx.damaged_files`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from dreamfx.chain import FLOAT32_TINY, Chain
from dreamfx.dream import Transforms
from dreamfx.effect import RECONSTRUCTIONS, DreamEffect, _Flag, _Range, parameter_names
from dreamfx.errors import DreamfxError
from dreamfx.metrics import perturbation_snr, snr_db
from dreamfx.models import SHIPPED_MODELS, model_path
from dreamfx.presets import Preset, load_preset, preset_names, preset_path, save_preset, validate_preset

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


# --- blocks, rates, channels -------------------------------------------------------------------------
@check("blocks", 1)
def empty_block(ctx: Context) -> str:
    for shape in ((2, 0), (0, 2), (0,)):
        out = ctx.effect(np.zeros(shape, np.float32), ctx.sr)
        expect(out.shape == shape, f"an empty {shape} block came back as {out.shape}")
    x = ctx.noise()
    plain = stream(ctx.effect, x, ctx.sr, 512)
    ctx.effect.reset()
    with_empty = np.concatenate([np.concatenate([ctx.effect(x[:, i:i + 512], ctx.sr, reset=False),
                                                 ctx.effect(x[:, :0], ctx.sr, reset=False)], axis=1)
                                 for i in range(0, x.shape[1], 512)], axis=1)
    expect(np.array_equal(plain, with_empty), f"empty blocks mid-stream changed the output by "
           f"{max_difference(plain, with_empty):.3g}")
    return "(2, 0), (0, 2), (0,) kept; empty blocks mid-stream change nothing"


@check("blocks", 1)
def one_sample_blocks(ctx: Context) -> str:
    n = ctx.latency() + ctx.chunk_samples() + 100
    x = ctx.noise(samples=n)
    whole = stream(ctx.effect, x, ctx.sr, n)
    # A fresh effect reads a (2, 1) block as one channel of two samples, as pedalboard does; after a first
    # block it keeps the layout it has seen.
    ones = stream(ctx.effect, x, ctx.sr, [64, 1])
    expect(np.array_equal(whole, ones), f"1-sample blocks differ from one call by {max_difference(whole, ones):.3g}")
    mono = stream(ctx.effect, x[0], ctx.sr, 1)
    expect(np.array_equal(mono, stream(ctx.effect, x[0], ctx.sr, n)), "mono 1-sample blocks differ from one call")
    return f"{n} one-sample calls, stereo and mono: identical to one call"


@check("blocks", 2)
def block_sizes(ctx: Context) -> str:
    x = ctx.noise()
    whole = stream(ctx.effect, x, ctx.sr, x.shape[1])
    sizes = BLOCK_SIZES[1:] if ctx.strictness >= 4 else (100, 511, 4096)
    for size in sizes:
        out = stream(ctx.effect, x, ctx.sr, size)
        expect(np.array_equal(whole, out), f"blocks of {size} differ from one call by {max_difference(whole, out):.3g}")
    # a host's blocks vary around loop points and automation: random sizes, small and large
    varying = np.random.default_rng(2).integers(1, 4097, x.shape[1]).tolist()
    out = stream(ctx.effect, x, ctx.sr, varying)
    expect(np.array_equal(whole, out), f"blocks of varying size (1..4096) differ from one call by "
           f"{max_difference(whole, out):.3g}")
    return f"blocks of {', '.join(map(str, sizes))} and of varying size (1..4096) at {ctx.sr} Hz: identical to one call"


@check("blocks", 3)
def sample_rates(ctx: Context) -> str:
    sizes = (256, 1024) if ctx.strictness < 6 else BLOCK_SIZES[2:]
    for sr in ctx.subject.sample_rates:
        n = int(ctx.samples * sr / ctx.sr)
        x = ctx.noise(samples=n, sample_rate=sr)
        offline = ctx.effect(x, sr)
        expect(bool(np.isfinite(offline).all()), f"NaN/Inf out at {sr} Hz")
        whole = stream(ctx.effect, x, sr, n)
        for size in sizes:
            out = stream(ctx.effect, x, sr, size)
            expect(np.array_equal(whole, out), f"at {sr} Hz, blocks of {size} differ by {max_difference(whole, out):.3g}")
        latency = ctx.latency(sr)
        expect(np.array_equal(whole[:, latency:], stream(ctx.effect, x, sr, n)[:, latency:]), f"not repeatable at {sr}")
    rates = ", ".join(f"{r / 1000:g}" for r in ctx.subject.sample_rates)
    return f"{rates} kHz x blocks of {', '.join(map(str, sizes))}: finite, identical to one call"


@check("blocks", 2)
def channels(ctx: Context) -> str:
    mono = ctx.noise(channels=1)[0]
    for count in CHANNEL_COUNTS:
        x = np.tile(mono, (count, 1))
        out = ctx.effect(x, ctx.sr)
        expect(out.shape == x.shape and bool(np.isfinite(out).all()), f"{count} channels: shape {out.shape} or NaN")
    expect(ctx.effect(mono, ctx.sr).shape == mono.shape, "a 1-D block came back in another shape")
    worst = float("inf")
    for dream in ctx.dreams():   # the dream's gain is one for all channels: equal channels stay equal
        alone = dream(mono, ctx.sr)
        six = dream(np.tile(mono, (6, 1)), ctx.sr)
        worst = min([worst] + [snr_db(alone, six[c]) for c in range(6)])
    expect(worst >= CHANNEL_SNR_DB, f"6 equal channels differ from the mono render: SNR {worst:.1f} dB")
    return f"1-D, 1, 2, 6 channels kept; 6 equal channels = the mono render (SNR >= {min(worst, 999):.1f} dB)"


# --- signals ------------------------------------------------------------------------------------------
@check("signals", 1)
def no_nan_inf(ctx: Context) -> str:
    bad = [name for name, (_, y) in ctx.renders().items() if not np.isfinite(y).all()]
    expect(not bad, f"NaN/Inf out for {', '.join(bad)}")
    return f"{', '.join(ctx.renders())}: all finite"


@check("signals", 1)
def no_subnormal(ctx: Context) -> str:
    counts = {name: int(((np.abs(y) > 0) & (np.abs(y) < FLOAT32_TINY)).sum()) for name, (_, y) in ctx.renders().items()}
    bad = {k: v for k, v in counts.items() if v}
    expect(not bad, f"subnormal samples out: {bad}")
    return "no subnormal sample in any output"


@check("signals", 1)
def peak(ctx: Context) -> str:
    rises = {name: 20 * np.log10(max(np.abs(y).max(), 1e-30) / np.abs(x).max())
             for name, (x, y) in ctx.renders().items() if np.abs(x).max() > 0}
    worst = max(rises, key=rises.get)
    expect(rises[worst] <= PEAK_HEADROOM_DB, f"{worst}: output peak {rises[worst]:+.1f} dB above the input's")
    return f"highest output peak {rises[worst]:+.1f} dB relative to the input's ({worst}); limit {PEAK_HEADROOM_DB:+.0f} dB"


@check("signals", 1)
def silence(ctx: Context) -> str:
    level = float(np.abs(ctx.renders()["silence"][1]).max())
    dbfs = 20 * np.log10(level) if level > 0 else -np.inf
    expect(dbfs <= SILENCE_DBFS, f"silence in gave {dbfs:.1f} dBFS out")
    return f"silence in -> {'digital silence' if level == 0 else f'{dbfs:.1f} dBFS'} out"


# --- bad input ----------------------------------------------------------------------------------------
BURSTS = {"NaN": np.nan, "+Inf": np.inf, "-Inf": -np.inf}


@check("faults", 1)
def nan_refused(ctx: Context) -> str:
    """NaN/Inf blocks are refused in one line and leave the stream as if they had never come."""
    x, block = ctx.noise(), 512
    clean = stream(ctx.effect, x, ctx.sr, block)
    for name, value in BURSTS.items():
        ctx.effect.reset()
        out = []
        for i in range(0, x.shape[1], block):
            if i == block * 3:
                bad = x[:, i:i + block].copy()
                bad[:, 100:140] = value
                message = one_line_error(lambda: ctx.effect(bad, ctx.sr, reset=False))
                expect(message is not None, f"a block with {name} was accepted")
            out.append(ctx.effect(x[:, i:i + block], ctx.sr, reset=False))
        got = np.concatenate(out, axis=1)
        expect(np.array_equal(got, clean), f"after a refused {name} block the stream differs by "
               f"{max_difference(got, clean):.3g}")
    bad = x.copy()
    bad[1, 1000] = np.nan
    expect(one_line_error(lambda: ctx.effect(bad, ctx.sr)) is not None, "an offline render of NaN was accepted")
    return "NaN, +Inf, -Inf blocks refused in one line; the stream goes on as if they had not come"


@check("faults", 2)
def nan_live(ctx: Context) -> str:
    """The live path (the engine behind the audio callback) takes NaN/Inf samples as silence and counts the
    blocks that held them."""
    x, block = ctx.noise(), 256
    for dream in ctx.dreams():
        engine = dream.engine(ctx.sr, 2)
        starts = range(0, x.shape[1], block)
        bursts = {4: np.nan, 9: np.inf, 10: -np.inf}
        engine.reset()
        got = []
        for k, i in enumerate(starts):
            piece = x[:, i:i + block].copy()
            if k in bursts:
                piece[:, 17] = bursts[k]
            got.append(engine.process(piece))
        counted = engine.stats.nonfinite_blocks
        engine.reset()
        silenced = x.copy()
        silenced[:, [i + 17 for k, i in enumerate(starts) if k in bursts]] = 0.0
        reference = np.concatenate([engine.process(silenced[:, i:i + block]) for i in starts], axis=1)
        got = np.concatenate(got, axis=1)
        expect(bool(np.isfinite(got).all()), "NaN/Inf reached the output")
        expect(np.array_equal(got, reference), f"NaN/Inf did not act as silence: the output differs by "
               f"{max_difference(got, reference):.3g} from the stream with those samples silent")
        expect(counted == len(bursts), f"{counted} non-finite blocks counted, {len(bursts)} sent")
    return f"{len(bursts)} blocks with NaN/Inf: counted, the output finite and as if those samples were silent"


# --- timing and state ----------------------------------------------------------------------------------
@check("timing", 1)
def latency_true(ctx: Context) -> str:
    dreams = ctx.dreams()
    saved = [d.intensity for d in dreams]
    x = np.zeros((2, ctx.samples), np.float32)
    x[:, 37] = 0.5
    try:
        for d in dreams:
            d.intensity = 0.0
        for d in dreams:
            latency = d.latency_samples(ctx.sr)
            out = stream(d, x, ctx.sr, 700)
            at = int(np.argmax(np.abs(out[0])))
            expect(at == 37 + latency, f"an impulse came out {at - 37} samples late, {latency} reported")
            expect(max_difference(out[:, latency:], x[:, :-latency]) <= 1e-6, "at intensity 0 the output is not "
                   "the input delayed")
        noise, total = ctx.noise(), ctx.latency()
        streamed = stream(ctx.effect, np.pad(noise, ((0, 0), (0, total))), ctx.sr, 4096)[:, total:]
        offline = ctx.effect(noise, ctx.sr)
        expect(max_difference(streamed, offline) <= 1e-6, f"the whole effect is not {total} samples late: streamed "
               f"and offline differ by {max_difference(streamed, offline):.3g}")
    finally:
        for d, value in zip(dreams, saved):
            d.intensity = value
    return f"{ctx.latency()} samples at {ctx.sr} Hz: an impulse comes out exactly that late at intensity 0"


@check("timing", 1)
def stream_equals_offline(ctx: Context) -> str:
    x, latency = ctx.renders()["noise"][0], ctx.latency()
    offline = ctx.renders()["noise"][1]
    streamed = stream(ctx.effect, np.pad(x, ((0, 0), (0, latency))), ctx.sr, 1024)[:, latency:]
    expect(np.array_equal(streamed, offline), f"streamed (blocks of 1024) and offline differ by "
           f"{max_difference(streamed, offline):.3g} (SNR {snr_db(offline, streamed):.1f} dB)")
    return "streamed in blocks of 1024, less the latency = the offline render, bit for bit"


@check("timing", 1)
def reset_identical(ctx: Context) -> str:
    x = ctx.noise()
    first = stream(ctx.effect, x, ctx.sr, 1000)
    ctx.effect(ctx.noise(), ctx.sr, reset=False)  # leave some state behind
    again = stream(ctx.effect, x, ctx.sr, 1000)
    expect(np.array_equal(first, again), f"after reset() the output differs by {max_difference(first, again):.3g}")
    return "reset() then the same input: identical output"


# --- parameters ---------------------------------------------------------------------------------------
def parameter_values(effect: DreamEffect, name: str, rng: np.random.Generator) -> tuple[object, bool | None]:
    """A random value for parameter ``name``: (value, True if it must be accepted / False if refused /
    None if either is right, e.g. a blend of layers the backend cannot run)."""
    attribute = getattr(type(effect), name)
    junk = [None, "x", [], {}, b"1", complex(1, 1), object(), float("nan"), float("inf"), -float("inf")]
    spec = effect.spec
    if name in ("backend", "device"):
        return junk[rng.integers(len(junk))] if rng.random() < 0.5 else "cpu", False
    if isinstance(attribute, _Flag):
        return (bool(rng.integers(2)), True) if rng.random() < 0.5 else \
            ([0, 1, "True", None, 1.0, []][rng.integers(6)], False)
    if isinstance(attribute, _Range):
        low, high, kind = attribute.low, attribute.high, attribute.kind
        if rng.random() < 0.5:
            value = int(rng.integers(low, high, endpoint=True)) if kind is int else float(rng.uniform(low, high))
            return value, True
        outside = [low - 1 - rng.random() * 1e6, high + 1 + rng.random() * 1e6, True] + junk
        if kind is int:
            outside.append(float(rng.integers(low, high)) + 0.5)
        return outside[rng.integers(len(outside))], False
    if name == "reconstruction":
        return (RECONSTRUCTIONS[rng.integers(2)], True) if rng.random() < 0.5 else (["phase", 0, None][rng.integers(3)],
                                                                                   False)
    if name == "band_hz":
        a, b = sorted(rng.uniform(0, 20000, 2))
        return ((a, b), True) if rng.random() < 0.5 else ([(b, a), (-1.0, 100.0), (100.0,), "200-4000", None,
                                                           (float("nan"), 1.0)][rng.integers(6)], False)
    if name == "transforms":
        torch_only = True if effect.backend.name == "torch" else None  # refused by exported steps
        if rng.random() < 0.5:
            keys = rng.choice(len(Transforms.LIMITS), size=1 + int(rng.integers(len(Transforms.LIMITS))), replace=False)
            picked = {key: Transforms.LIMITS[key] for key in np.array(list(Transforms.LIMITS))[keys]}
            return {key: int(rng.integers(low, high, endpoint=True)) if isinstance(low, int) else
                    float(rng.uniform(low, high)) for key, (low, high) in picked.items()}, torch_only
        return [{"samples": 0}, {"shift": 2}, {"gain_db": -1.0}, {"noise_db": "2"}, {"samples": 2.5}, [4], "x",
                {"tilt_db": float("nan")}][rng.integers(8)], False
    layers, classes = list(spec.layer_names[:-1]), list(spec.class_names)
    n_channels = spec.channels[layers.index(effect.layer)]
    # An exported dream step serves the objectives of its graph's layer only, and a channel objective's channels
    # may not exist in another layer, and an ensemble dreams toward classes only: refusing a valid name is right
    # there too (in one line naming it).
    either = None if spec.exported_graph_layer is not None else True
    if effect.ensemble and name in ("layer", "channel", "channels", "layers"):
        either = None
    if name == "layer":
        return (layers[rng.integers(len(layers))], either if effect.objective != "channel" else None) if rng.random() < 0.5 \
            else ([f"conv{len(layers) + 1}", "logits", 3, None, ""][rng.integers(5)], False)
    if name == "channel":
        return (int(rng.integers(n_channels)), either) if rng.random() < 0.5 else \
            ([n_channels, -1, 2.5, "3", True][rng.integers(5)], False)
    if name == "target":
        return (classes[rng.integers(len(classes))], either) if rng.random() < 0.5 else \
            (["no-such-class", 3, ""][rng.integers(3)], False)
    keys = {"channels": list(range(n_channels)), "targets": classes, "layers": layers}[name]
    if rng.random() < 0.5:
        chosen = rng.choice(len(keys), size=min(len(keys), 1 + int(rng.integers(3))), replace=False)
        weights = {keys[i]: float(rng.uniform(0.1, 1.0)) for i in chosen}
        return weights, None if name == "layers" and effect.backend_name not in ("auto", "torch") else either
    wrong = {"no-such-key" if name != "channels" else n_channels: 1.0}
    return [{}, wrong, [1.0], 3, {keys[0]: -1.0}, {keys[0]: "a"}][rng.integers(6)], False


def _settings_state(effect: DreamEffect) -> dict:
    return dataclasses.asdict(effect.settings)


def _restore(effect: DreamEffect, state: dict) -> None:
    for name, value in state.items():
        current = getattr(effect.settings, name)
        if dataclasses.is_dataclass(current):  # objective, transforms: asdict made them dicts
            value = type(current)(**value)
        setattr(effect.settings, name, value)


@check("parameters", 2)
def parameter_fuzz(ctx: Context) -> str:
    effect = ctx.dreams()[0]
    per_parameter = min(1000, 200 * ctx.strictness)
    baseline = _settings_state(effect)
    accepted = refused = 0
    for name in parameter_names():
        for _ in range(per_parameter):
            value, must_accept = parameter_values(effect, name, ctx.rng)
            message = one_line_error(lambda: setattr(effect, name, value))
            if message is None:
                expect(must_accept is not False, f"{name} = {value!r} was accepted")
                accepted += 1
            else:
                expect(must_accept is not True, f"{name} = {value!r} was refused: {message}")
                expect(name in message, f"the error for {name} = {value!r} does not name it: {message}")
                expect(_settings_state(effect) == baseline, f"a refused {name} = {value!r} changed the effect")
                refused += 1
            _restore(effect, baseline)
    return (f"{len(parameter_names())} parameters x {per_parameter} values: {accepted} accepted, {refused} refused in "
            "one line naming the parameter, state unchanged")


@check("parameters", 1)
def read_only(ctx: Context) -> str:
    effect = ctx.dreams()[0]
    names = [n for n in dir(type(effect)) if not n.startswith("_") and n not in parameter_names()]
    baseline = _settings_state(effect)
    for name in names:
        expect(one_line_error(lambda: setattr(effect, name, 1)) is not None, f"DreamEffect.{name} took a value")
    expect(one_line_error(lambda: setattr(effect, "intensitty", 0.5)) is not None, "a misspelt parameter was set")
    if isinstance(ctx.effect, Chain):
        expect(one_line_error(lambda: setattr(ctx.effect, "intensity", 0.5)) is not None, "a Chain took an attribute")
    expect(_settings_state(effect) == baseline, "a refused attribute changed the effect")
    return f"{len(names)} read-only attributes and a misspelt name refused in one line"


@check("parameters", 3)
def automation(ctx: Context) -> str:
    """Random intensity and mix every 32 samples: no NaN, and no step the static renders do not have."""
    n, sr = ctx.samples, ctx.sr
    t = np.arange(n) / sr
    x = np.tile((0.5 * np.sin(2 * np.pi * (40 * t + 180 * t ** 2 / t[-1]))).astype(np.float32), (2, 1))
    dreams = ctx.dreams()
    saved = [(d.intensity, d.mix) for d in dreams]

    def roughness(y: np.ndarray) -> float:
        return float(np.abs(np.diff(y, n=2, axis=1)).max())

    try:
        static = []
        for level in (0.0, 0.5, 1.0):
            for d in dreams:
                d.intensity, d.mix = level, level
            static.append(roughness(stream(ctx.effect, x, sr, n)))
        ctx.effect.reset()
        out = []
        for i in range(0, n, 32):
            for d in dreams:
                d.intensity, d.mix = (float(v) for v in ctx.rng.uniform(0, 1, 2))
            out.append(ctx.effect(x[:, i:i + 32], sr, reset=False))
    finally:
        for d, (intensity, mix) in zip(dreams, saved):
            d.intensity, d.mix = intensity, mix
    y = np.concatenate(out, axis=1)
    expect(bool(np.isfinite(y).all()), "NaN/Inf out under automation")
    ratio = roughness(y) / max(max(static), 1e-12)
    expect(ratio <= AUTOMATION_STEP_RATIO, f"a step {ratio:.2f}x the largest second difference of the static renders")
    return f"{n // 32} changes of intensity and mix, one per 32 samples: finite, largest step {ratio:.2f}x the static"


@check("parameters", 3)
def threaded_parameters(ctx: Context) -> str:
    """Parameters set from another thread while audio runs: no exception, no torn state."""
    dreams, x = ctx.dreams(), ctx.noise()
    stop, errors, last, changes = threading.Event(), [], {}, [0]
    rng = np.random.default_rng(1)

    def tweak():
        try:
            while not stop.is_set():
                d = dreams[rng.integers(len(dreams))]
                for name in ("intensity", "mix", "step", "iterations", "layer", "target"):
                    value, must_accept = parameter_values(d, name, rng)
                    if must_accept and name != "iterations" or name == "iterations" and must_accept and value <= 8:
                        setattr(d, name, value)
                        last[(id(d), name)] = (d, value)
                        changes[0] += 1
                time.sleep(0.0005)
        except Exception as exc:  # noqa: BLE001 - reported as the check's failure
            errors.append(f"setting: {type(exc).__name__}: {exc}")

    saved = [_settings_state(d) for d in dreams]
    thread = threading.Thread(target=tweak, daemon=True)
    ctx.effect.reset()
    thread.start()
    try:
        out = [ctx.effect(x[:, i:i + 256], ctx.sr, reset=False) for i in range(0, x.shape[1], 256)]
    except Exception as exc:  # noqa: BLE001
        errors.append(f"processing: {type(exc).__name__}: {exc}")
        out = [np.zeros((2, 0), np.float32)]
    finally:
        stop.set()
        thread.join()
    try:
        expect(not errors, "; ".join(errors)[:300])
        expect(bool(np.isfinite(np.concatenate(out, axis=1)).all()), "NaN/Inf out while parameters changed")
        for (_, name), (d, value) in last.items():
            got = getattr(d, name)
            expect(got == value, f"{name} reads {got!r} after {value!r} was set last")
        for d in dreams:
            d.settings.objective.validate(d.spec)
    finally:
        for d, state in zip(dreams, saved):
            _restore(d, state)
    return f"{changes[0]} changes from another thread during {len(out)} blocks: no exception, last values kept"


@check("state", 1)
def preset_round_trip(ctx: Context) -> str:
    import tempfile
    midi = load_preset(ctx.subject.preset_file).midi if ctx.subject.preset_file else None
    chain = ctx.effect if isinstance(ctx.effect, Chain) else Chain([ctx.effect])
    with tempfile.TemporaryDirectory() as tmp:
        first, second = Path(tmp) / "first.toml", Path(tmp) / "second.toml"
        save_preset(Preset.from_chain(chain, ctx.subject.name, "", midi), first)
        save_preset(load_preset(first), second)
        expect(first.read_bytes() == second.read_bytes(), "save -> load -> save changed the file")
        rebuilt = load_preset(second).build_chain()
    x = ctx.renders()["noise"][0]
    original, again = chain(x, ctx.sr), rebuilt(x, ctx.sr)
    expect(np.array_equal(original, again), f"the chain rebuilt from its preset renders {max_difference(original, again):.3g} off")
    return "save -> load -> save: identical bytes; the rebuilt chain renders identically"


@check("state", 5)
def smoothness(ctx: Context) -> str:
    from dreamfx.audio_io import read_audio
    from dreamfx.models import example_clip_path
    clip, sr = read_audio(example_clip_path(), ctx.samples / 44100)
    expect(sr == ctx.sr or ctx.subject.kind != "export", f"the example clip is {sr} Hz, the export {ctx.sr} Hz")
    snr = perturbation_snr(lambda a: ctx.effect(a, sr), clip)
    expect(snr >= SMOOTH_SNR_DB, f"1e-7 of input noise changes the output at SNR {snr:.1f} dB")
    return f"the example clip + 1e-7 noise: output SNR {snr:.1f} dB (>= {SMOOTH_SNR_DB:.0f})"


# --- running the battery ------------------------------------------------------------------------------
def run_checks(subject: Subject, strictness: int = 5, seconds: float | None = None,
               only: set[str] | None = None) -> Iterator[Outcome]:
    """Run every check of ``strictness`` or lower that applies to ``subject`` (or those named in ``only``)."""
    start = time.perf_counter()
    try:
        ctx = Context(subject, strictness, seconds)
    except Exception as exc:  # noqa: BLE001 - a subject that cannot be built fails its first check
        yield Outcome(subject.name, "build", "state", False, f"{type(exc).__name__}: {exc}",
                      time.perf_counter() - start)
        return
    yield Outcome(subject.name, "build", "state", True, f"built in {time.perf_counter() - start:.1f} s; latency "
                  f"{ctx.latency()} samples at {ctx.sr} Hz", time.perf_counter() - start)
    for c in CHECKS:
        if (c.name in only) if only is not None else (c.strictness <= strictness and c.applies(subject)):
            start = time.perf_counter()
            try:
                passed, figure = True, c.run(ctx)
            except CheckFailed as failure:
                passed, figure = False, str(failure)
            except Exception as exc:  # noqa: BLE001 - a check that crashes is a failed check
                passed, figure = False, f"raised {type(exc).__name__}: {str(exc)[:200]}"
            yield Outcome(subject.name, c.name, c.group, passed, figure, time.perf_counter() - start)


def subject_for(target: str | Path) -> Subject:
    """The Subject of a preset (name or .toml), a shipped model name, a .safetensors model or an export.
    ``preset:NAME`` and ``model:NAME`` say which where a preset and a model share a name (a bare ``default`` is
    the preset)."""
    target = str(target)
    kind, _, name = target.rpartition(":") if target.startswith(("preset:", "model:")) else ("", "", target)
    suffix = Path(name).suffix
    if kind == "preset" or (not kind and (suffix == ".toml" or name in preset_names())):
        path = preset_path(name)
        preset = load_preset(path)
        model = preset.dream.get("model", "default")
        model_file = None if model in SHIPPED_MODELS else preset._model_path(model)
        return Subject(target, "preset", lambda: load_preset(path).build_chain(), model_file=model_file,
                       preset_file=path)
    path = model_path(name)
    if name in SHIPPED_MODELS or suffix == ".safetensors":
        return Subject(target, "model", lambda: DreamEffect(path), model_file=path)
    if suffix in (".onnx", ".pt", ".ts"):
        from dreamfx.backends import read_model_metadata
        rate = read_model_metadata(path)["export"]["sample_rate"] if path.is_file() else 44100
        return Subject(target, "export", lambda: DreamEffect(path), sample_rates=(int(rate),), model_file=path)
    raise DreamfxError(f"cannot validate {target!r}: name a preset ({', '.join(preset_names())}), a shipped model "
                       f"({', '.join(SHIPPED_MODELS)}), a .toml preset, a .safetensors model or an .onnx / .pt export")


def shipped_targets() -> list[str]:
    """Every shipped preset and model."""
    return preset_names() + [f"model:{m}" if m in preset_names() else m for m in SHIPPED_MODELS]


def _validate_target(target: str, strictness: int, seconds: float | None, threads: int) -> list[Outcome]:
    import torch
    torch.set_num_threads(threads)
    return list(run_checks(subject_for(target), strictness, seconds))


def validate(targets: list[str], strictness: int, seconds: float | None, jobs: int,
             report: Callable[[Outcome], None]) -> list[Outcome]:
    """Run the battery on every target, ``jobs`` targets at a time in worker processes; ``report`` is called
    with each outcome (a target's outcomes together, as it finishes, when jobs > 1)."""
    import os
    for target in targets:
        subject_for(target)  # refuse a bad target before any work
    outcomes: list[Outcome] = []
    threads = max(1, (os.cpu_count() or 1) // jobs)
    if jobs == 1:
        for target in targets:
            for outcome in run_checks(subject_for(target), strictness, seconds):
                report(outcome)
                outcomes.append(outcome)
        return outcomes
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        for result in pool.map(_validate_target, targets, [strictness] * len(targets), [seconds] * len(targets),
                               [threads] * len(targets)):
            for outcome in result:
                report(outcome)
                outcomes.append(outcome)
    return outcomes


def summary(outcomes: list[Outcome]) -> str:
    failed = [o for o in outcomes if not o.passed]
    subjects = len({o.subject for o in outcomes})
    line = f"{subjects} targets, {len(outcomes)} checks: {len(outcomes) - len(failed)} passed, {len(failed)} failed"
    return line + ("" if not failed else " (" + ", ".join(f"{o.subject}: {o.check}" for o in failed[:12]) +
                   (", ..." if len(failed) > 12 else "") + ")")


from dreamfx import damaged_files  # noqa: E402,F401 - registers the file checks (it imports this module)
