"""The parameter and state checks: every parameter validates what it is given (fuzz), read-only ones refuse,
automation stays smooth, parameters set from another thread while audio runs, a preset's save and load round
trip, and smoothness under 1e-7 of input noise.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np

from dreamfx.dream.ascent import Transforms
from dreamfx.dream.guide import MATCHES
from dreamfx.plugin.chain import Chain
from dreamfx.plugin.effect import RECONSTRUCTIONS, DreamEffect, _Flag, _Range, parameter_names
from dreamfx.plugin.presets import EXAMPLE_GUIDE, load_preset, save_preset
from dreamfx.validate.framework import (AUTOMATION_STEP_RATIO, SMOOTH_SNR_DB, Context, check, expect, max_difference,
                                        one_line_error, stream)
from dreamfx.validate.metrics import perturbation_snr


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
        if attribute.optional and rng.random() < 0.1:
            return None, True
        outside = [low - 1 - rng.random() * 1e6, high + 1 + rng.random() * 1e6, True] + \
            [j for j in junk if j is not None or not attribute.optional]
        if kind is int:
            outside.append(float(rng.integers(low, high)) + 0.5)
        return outside[rng.integers(len(outside))], False
    if name == "match":
        guided_graph = effect.objective == "guide" and effect.backend.name != "torch"  # serves "tags" only
        return (MATCHES[rng.integers(len(MATCHES))], None if guided_graph else True) if rng.random() < 0.5 else \
            (["style", "", 3, None][rng.integers(4)], False)
    if name == "guide":  # a real guide one time in fifty: the network listens to it each time (seconds)
        return (str(EXAMPLE_GUIDE), None) if rng.random() < 0.02 else \
            ([str(EXAMPLE_GUIDE.with_name("no-such-guide.wav")), "", 3, b"x", []][rng.integers(5)], False)
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
    """The effect's settings (every field an immutable value: numbers, tuples, frozen objective and transforms)."""
    return {field.name: getattr(effect.settings, field.name) for field in dataclasses.fields(effect.settings)}


def _restore(effect: DreamEffect, state: dict) -> None:
    for name, value in state.items():
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
        save_preset(chain.to_preset(ctx.subject.name, "", midi), first)
        save_preset(load_preset(first), second)
        expect(first.read_bytes() == second.read_bytes(), "save -> load -> save changed the file")
        rebuilt = Chain.from_preset(second)
    x = ctx.renders()["noise"][0]
    original, again = chain(x, ctx.sr), rebuilt(x, ctx.sr)
    expect(np.array_equal(original, again), f"the chain rebuilt from its preset renders {max_difference(original, again):.3g} off")
    return "save -> load -> save: identical bytes; the rebuilt chain renders identically"


@check("state", 2)  # CI runs strictness 2: every shipped preset and model (tests/test_smoothness.py: other clips)
def smoothness(ctx: Context) -> str:
    from pedalboard.io import AudioFile
    from dreamfx.nets.models import example_clip_path
    with AudioFile(str(example_clip_path())).resampled_to(ctx.sr) as f:  # at the rate it runs at (an export: its own)
        clip = f.read(ctx.samples).astype(np.float32)
    snr = perturbation_snr(lambda a: ctx.effect(a, ctx.sr), clip)
    expect(snr >= SMOOTH_SNR_DB, f"1e-7 of input noise changes the output at SNR {snr:.1f} dB")
    return f"the example clip at {ctx.sr} Hz + 1e-7 noise: output SNR {snr:.1f} dB (>= {SMOOTH_SNR_DB:.0f})"


