"""dreamfx validate: it passes on what is shipped, and each of its checks fails on an effect or file broken for it.

The broken effects are DreamEffects with one fault each (a subclass overriding
one method); the broken openers accept, unpickle, inflate or write what they
should refuse.  Each test runs only the check it breaks.
"""

import json
import pickle
import threading
import zipfile

import numpy as np
import pytest

from dreamfx import DreamEffect, DreamfxError
from dreamfx.plugin.effect import _Range
from dreamfx.nets.models import load_model, model_path
from dreamfx.plugin.presets import PRESET_DIR
from dreamfx.validate.battery import run_checks, subject_for
from dreamfx.validate.framework import CHECKS, Subject
from conftest import cli_subprocess

DEFAULT_MODEL = model_path("default")


def outcome_of(check: str, build=None, **subject) -> tuple[bool, str]:
    """(passed, figure) of one check on a subject built by ``build`` (default: a plain DreamEffect)."""
    subject.setdefault("model_file", DEFAULT_MODEL)
    outcomes = list(run_checks(Subject(f"broken-for-{check}", "model", build or (lambda: DreamEffect(iterations=1)),
                                       **subject), strictness=10, only={check}))
    assert outcomes[0].passed, outcomes[0].figure  # built
    (result,) = [(o.passed, o.figure) for o in outcomes if o.check == check]
    print(check, result)
    return result


def test_the_battery_has_at_least_twenty_checks_in_every_group():
    assert len(CHECKS) >= 20
    assert {c.group for c in CHECKS} == {"blocks", "signals", "faults", "timing", "parameters", "state", "files"}


def test_every_check_passes_on_a_plain_effect():
    """The reference for the tests below: the same subject, unbroken, passes every check they break."""
    failed = [o.line() for o in run_checks(Subject("plain", "model", lambda: DreamEffect(iterations=1),
                                                   model_file=DEFAULT_MODEL), strictness=5)
              if not o.passed]
    assert not failed, failed


class Broken(DreamEffect):
    """A DreamEffect whose subclasses break one method; called like the effect, through the overriding process."""

    def __call__(self, *args, **kwargs):
        return self.process(*args, **kwargs)


class EmptyBlockFault(Broken):
    def process(self, input_array, sample_rate, buffer_size=8192, reset=True, progress=None):
        return np.zeros((2, 1), np.float32) if input_array.size == 0 else super().process(
            input_array, sample_rate, buffer_size, reset, progress)


class BlockSizeFault(Broken):
    """Blocks shorter than 64 samples come out 0.1 % louder."""

    def process(self, input_array, sample_rate, buffer_size=8192, reset=True, progress=None):
        out = super().process(input_array, sample_rate, buffer_size, reset, progress)
        return out * np.float32(1.001) if input_array.shape[-1] < 64 else out


class RateFault(Broken):
    def process(self, input_array, sample_rate, buffer_size=8192, reset=True, progress=None):
        out = super().process(input_array, sample_rate, buffer_size, reset, progress)
        return out * np.nan if sample_rate == 96000 else out


class ChannelFault(Broken):
    """Six channels come back rotated."""

    def process(self, input_array, sample_rate, buffer_size=8192, reset=True, progress=None):
        out = super().process(input_array, sample_rate, buffer_size, reset, progress)
        return np.roll(out, 1, axis=1) if out.ndim == 2 and out.shape[0] == 6 else out


class OutputFault(Broken):
    """Adds ``offset`` to the output, scales it by ``gain``, and writes NaN where the input is full scale."""

    offset, gain, nan_at_full_scale = 0.0, 1.0, False

    def process(self, input_array, sample_rate, buffer_size=8192, reset=True, progress=None):
        out = super().process(input_array, sample_rate, buffer_size, reset, progress) * self.gain + self.offset
        if self.nan_at_full_scale:
            out[np.abs(input_array) >= 1.0] = np.nan
        return out.astype(np.float32)


class SubnormalFault(OutputFault):
    offset = 1e-40


class PeakFault(OutputFault):
    gain = 3.0


class SilenceFault(OutputFault):
    offset = 1e-5


class NanFault(OutputFault):
    nan_at_full_scale = True


class NanPassFault(Broken):
    """Takes NaN blocks and lets NaN through, instead of refusing them."""

    def process(self, input_array, sample_rate, buffer_size=8192, reset=True, progress=None):
        bad = ~np.isfinite(input_array)
        out = super().process(np.where(bad, 0, input_array), sample_rate, buffer_size, reset, progress)
        out[bad] = np.nan
        return out


class LeakyEngine:
    """An engine that passes NaN through (the live path's fault)."""

    def __init__(self, engine):
        self.engine = engine

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def process(self, block):
        out = self.engine.process(np.nan_to_num(block))
        out[:, ~np.isfinite(block).all(axis=0)] = np.nan
        return out


class LiveNanFault(Broken):
    def engine(self, sample_rate, channels):
        return LeakyEngine(super().engine(sample_rate, channels))


class LatencyFault(Broken):
    def latency_samples(self, sample_rate):
        return super().latency_samples(sample_rate) + 1


class OfflineFault(Broken):
    def process(self, input_array, sample_rate, buffer_size=8192, reset=True, progress=None):
        out = super().process(input_array, sample_rate, buffer_size, reset, progress)
        return out * np.float32(1.001) if reset else out


class ResetFault(Broken):
    def reset(self):
        pass


class _Clamped(_Range):
    """A parameter that clamps what it is given instead of refusing it."""

    def __set__(self, obj, value):
        setattr(obj.settings, self.name, min(max(float(value), self.low), self.high))


class FuzzFault(Broken):
    mix = _Clamped(float, 0.0, 1.0, "Wet/dry mix, clamped.")


class ReadOnlyFault(Broken):
    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)


class AutomationFault(Broken):
    """A DC offset that follows intensity: every change of it is a step."""

    def process(self, input_array, sample_rate, buffer_size=8192, reset=True, progress=None):
        return super().process(input_array, sample_rate, buffer_size, reset, progress) + np.float32(0.2 *
                                                                                                     self.intensity)


class ThreadFault(Broken):
    """step may only be set from the main thread."""

    @property
    def step(self):
        return self.settings.step

    @step.setter
    def step(self, value):
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("step set from another thread")
        self.settings.step = float(value)


class RoundTripFault(Broken):
    def parameters(self):
        return {**super().parameters(), "intensity": self.intensity - 0.01}


class ChaoticFault(Broken):
    def process(self, input_array, sample_rate, buffer_size=8192, reset=True, progress=None):
        out = super().process(input_array, sample_rate, buffer_size, reset, progress)
        return (out + 0.1 * np.sin(1e7 * input_array)).astype(np.float32)


@pytest.mark.parametrize("check, broken", [
    ("empty-block", EmptyBlockFault), ("one-sample-blocks", BlockSizeFault), ("block-sizes", BlockSizeFault),
    ("sample-rates", RateFault), ("channels", ChannelFault), ("no-nan-inf", NanFault),
    ("no-subnormal", SubnormalFault), ("peak", PeakFault), ("silence", SilenceFault), ("nan-refused", NanPassFault),
    ("nan-live", LiveNanFault), ("latency-true", LatencyFault), ("stream-equals-offline", OfflineFault),
    ("reset-identical", ResetFault), ("parameter-fuzz", FuzzFault), ("read-only", ReadOnlyFault),
    ("automation", AutomationFault), ("threaded-parameters", ThreadFault), ("preset-round-trip", RoundTripFault),
    ("smoothness", ChaoticFault)])
def test_each_audio_check_fails_on_an_effect_broken_for_it(check, broken):
    passed, figure = outcome_of(check, lambda: broken(iterations=1))
    assert not passed, figure


def lenient(path):
    """Opens anything: the file is ignored (a loader that never refuses)."""
    return DreamEffect(iterations=1)


def unpickling(path):
    pickle.loads(path.read_bytes())
    raise DreamfxError("refused after unpickling")


def inflating(path):
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            archive.read(name)
    raise DreamfxError("refused after inflating")


def littering(path):
    path.with_name("opened.log").write_text("opened")
    raise DreamfxError("refused, but a file was written")


def several_lines(path):
    raise DreamfxError("refused\nin two lines")


@pytest.mark.parametrize("check", ["file-truncated", "file-bit-flipped", "file-oversized-header", "file-pickle",
                                   "file-zip-bomb"])
@pytest.mark.parametrize("opener", [lenient, littering, several_lines])
def test_each_file_check_fails_on_an_opener_that_accepts_writes_or_rambles(check, opener):
    passed, figure = outcome_of(check, open_model=opener)
    assert not passed, figure


def test_the_pickle_trap_and_the_zip_bomb_catch_an_opener_that_unpickles_or_inflates():
    passed, figure = outcome_of("file-pickle", open_model=unpickling)
    assert not passed and "unpickled" in figure
    passed, figure = outcome_of("file-zip-bomb", open_model=inflating)
    assert not passed and "inflated" in figure


@pytest.mark.parametrize("check", ["preset-wrong-types", "preset-damaged"])
def test_each_preset_file_check_fails_on_a_lenient_preset_reader(check):
    passed, figure = outcome_of(check, preset_file=PRESET_DIR / "default.toml", open_preset=lambda path: None)
    assert not passed, figure


def test_a_flipped_bit_in_a_models_weights_is_refused_and_an_unsealed_model_still_loads(tmp_path):
    data = bytearray(DEFAULT_MODEL.read_bytes())
    data[len(data) // 2] ^= 4                       # a weight's low mantissa bit: still a finite number
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(bytes(data))
    with pytest.raises(DreamfxError, match="do not match its seal"):
        load_model(damaged)
    import safetensors.torch
    model = load_model(DEFAULT_MODEL)
    unsealed = tmp_path / "unsealed.safetensors"
    safetensors.torch.save_file(model.state_dict(), str(unsealed), metadata={"dreamfx": json.dumps(model.meta)})
    assert all(np.array_equal(a, b) for a, b in zip(load_model(unsealed).state_dict().values(),
                                                     model.state_dict().values()))


def test_the_cli_validates_a_preset_and_a_model_and_prints_json():
    """Both fail only the peak check (listed in .ci/known-validate-failures): declared known, the run passes."""
    run = cli_subprocess("validate", "default", "model:default", "--strictness", "1", "--json", "--known-failure",
                         "default:peak", "--known-failure", "model:default:peak", timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(run.stdout)
    assert {c["subject"] for c in report["checks"]} == {"default", "model:default"}
    assert {(c["subject"], c["check"]) for c in report["checks"] if not c["passed"]} == {
        ("default", "peak"), ("model:default", "peak")}
    assert {c["check"] for c in report["checks"]} >= {"empty-block", "peak", "latency-true", "file-bit-flipped",
                                                       "preset-wrong-types", "preset-round-trip"}


def test_the_cli_refuses_an_unknown_target_in_one_line():
    run = cli_subprocess("validate", "no-such-preset", timeout=120)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "cannot validate" in run.stderr


def test_a_preset_and_a_model_of_the_same_name_are_told_apart():
    assert subject_for("default").kind == "preset" and subject_for("model:default").kind == "model"
    assert subject_for("msd-vgg").kind == "model"


@pytest.mark.parametrize("fmt, suffix, rate, known", [("onnx", ".onnx", 48000, set()),  # its peaks stay within
                                                      ("torchscript", ".pt", 44100, {"peak"})])
def test_an_export_passes_the_quick_battery_but_its_known_failures(tmp_path, fmt, suffix, rate, known):
    """An exported dream step is validated at its own sample rate (the example clip resampled to it for
    smoothness); objectives of another graph layer are refused in one line (parameter fuzz), flipped bits are
    refused or harmless (a zip timestamp)."""
    from dreamfx.export import export_model
    path = tmp_path / f"default{suffix}"
    export_model(load_model("default"), path, fmt=fmt, sample_rate=rate)
    outcomes = list(run_checks(subject_for(path), strictness=2))
    failed = {o.check for o in outcomes if not o.passed}
    print("\n".join(o.line() for o in outcomes))
    assert failed == known and subject_for(path).kind == "export"
    smoothness = [o.figure.split(" + ")[0] for o in outcomes if o.check == "smoothness"]
    assert smoothness == [f"the example clip at {rate} Hz"], smoothness
