"""The richer dream: octaves, dream memory, blends of classes or channels, a frequency band.

Each option must change the output measurably, keep the null test at intensity 0, and do what it claims,
measured on the signal: memory makes consecutive chunks' changes alike, octaves make the change less rough
from bin to bin, a blend of classes raises each class's logit in the rendered audio.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamfx import DreamEffect, DreamfxError
from dreamfx.dream.ascent import Objective
from dreamfx.validate.metrics import snr_db
from dreamfx.dsp.spectral import LOG_EPS, analyze_signal
from tests.conftest import excerpt
from tests.test_engine import stream

SR = 44100
OPTIONS = {
    "octaves": dict(octaves=3),
    "memory": dict(memory=0.8),
    "class blend": dict(targets={"jazz": 0.5, "metal": 0.5}),
    "channel blend": dict(layer="conv2", channels={5: 1.0, 17: 0.5}),
    "band": dict(band_hz=(300.0, 3000.0)),
    "consistency": dict(consistency=True),
    "layer blend": dict(layers={"conv1": 0.5, "conv4": 0.5}),
}


@pytest.fixture(scope="module")
def audio():
    return excerpt(4.0, SR)


@pytest.mark.parametrize("name", OPTIONS)
def test_option_changes_the_output_and_keeps_the_null_test(name, audio, measured):
    base = DreamEffect(intensity=1.0)(audio, SR)
    out = DreamEffect(intensity=1.0, **OPTIONS[name])(audio, SR)
    null = DreamEffect(intensity=0.0, **OPTIONS[name])(audio, SR)
    measured(f"dream option {name}: output differs from the plain dream by {-snr_db(base, out):.1f} dB; "
             f"null at intensity 0: max error {np.abs(null - audio).max():.1e}")
    assert -snr_db(base, out) > -20
    assert np.abs(null - audio).max() < 1e-5


@pytest.mark.parametrize("name", ["memory", "octaves", "class blend", "consistency", "layer blend"])
def test_option_is_block_size_independent(name, audio):
    effect = DreamEffect(intensity=1.0, iterations=4, **OPTIONS[name])
    offline = effect(audio[:, :2 * SR], SR)
    for block in (7, 1000):
        np.testing.assert_allclose(stream(effect, audio[:, :2 * SR], SR, block), offline, atol=1e-6)


def chunk_log_gains(effect: DreamEffect, audio: np.ndarray) -> np.ndarray:
    """(chunks, n_bins) log-gain the dream put on each chunk's new frames, averaged over those frames."""
    engine = effect.engine(SR, audio.shape[0])
    gains = []
    engine.on_chunk = lambda r: gains.append(torch.log((r.dreamed[0, :, -engine.chunk_frames:] + LOG_EPS)
                                                       / (r.dry[0, :, -engine.chunk_frames:] + LOG_EPS)).mean(-1))
    effect(audio, SR)
    engine.on_chunk = None
    return torch.stack(gains[4:]).numpy()  # past the silent start


def test_memory_makes_consecutive_chunks_alike(audio, measured):
    def chunk_to_chunk(memory):
        g = chunk_log_gains(DreamEffect(intensity=1.0, memory=memory), audio)
        return float(np.mean(np.abs(np.diff(g, axis=0))) / np.mean(np.abs(g)))
    without, with_memory = chunk_to_chunk(0.0), chunk_to_chunk(0.8)
    measured(f"dream memory 0.8: chunk-to-chunk change of the spectral gain {with_memory:.3f} of its size "
             f"(without memory {without:.3f})")
    assert with_memory < 0.8 * without


def test_octaves_make_the_change_smoother_across_frequency(audio, measured):
    def roughness(octaves):
        g = chunk_log_gains(DreamEffect(intensity=1.0, smooth_bins=1, octaves=octaves), audio)
        return float(np.mean(np.abs(np.diff(g, 2, axis=1))) / np.mean(np.abs(g)))
    one, three = roughness(1), roughness(3)
    measured(f"octaves 3: roughness of the gain across frequency {three:.3f} (octaves 1: {one:.3f})")
    assert three < one  # measured here: about 13 % smoother; the last, finest stage adds detail back


def model_windows(effect: DreamEffect, audio: np.ndarray) -> torch.Tensor:
    """(n, n_bins, 32) log-magnitude windows of the downmix of ``audio`` (channels, samples), 16 frames apart."""
    logmag = torch.log(analyze_signal(audio.mean(axis=0), effect.engine(SR, audio.shape[0]).stft).abs() + LOG_EPS)
    return torch.stack([logmag[:, i:i + 32] for i in range(0, logmag.shape[1] - 32, 16)])


def mean_objective(effect: DreamEffect, objective: Objective, audio: np.ndarray) -> float:
    return float(effect.engine(SR, audio.shape[0]).backend.evaluate(objective, model_windows(effect, audio)).mean())


def class_logits(effect: DreamEffect, audio: np.ndarray) -> dict[str, float]:
    """Mean logit per class of the model over 32-frame windows of ``audio`` (channels, samples)."""
    return {c: mean_objective(effect, Objective("class", target=c), audio) for c in effect.class_names}


def test_class_blend_raises_each_class_in_the_rendered_audio(audio, measured):
    effect = DreamEffect(intensity=1.0, iterations=10, targets={"jazz": 0.5, "metal": 0.5})
    before, after = class_logits(effect, audio), class_logits(effect, effect(audio, SR))
    rise = {c: after[c] - before[c] for c in before}
    measured("class blend jazz+metal, logit rise in the rendered audio: "
             + ", ".join(f"{c} {r:+.2f}" for c, r in rise.items()))
    assert rise["jazz"] > 0.3 and rise["metal"] > 0.3
    assert min(rise["jazz"], rise["metal"]) > max(r for c, r in rise.items() if c not in ("jazz", "metal"))


def layer_log_gains(effect: DreamEffect, audio: np.ndarray) -> dict[str, float]:
    """ln(energy after / before) of every conv layer over 32-frame windows, the rendered audio against ``audio``."""
    rendered = effect(audio, SR)
    return {name: float(np.log(mean_objective(effect, Objective("layer", name), rendered)
                               / mean_objective(effect, Objective("layer", name), audio)))
            for name in effect.layer_names}


def test_layer_blend_raises_each_layer_more_than_the_other_alone(audio, measured):
    gains = {label: layer_log_gains(DreamEffect(intensity=1.0, iterations=10, **kwargs), audio)
             for label, kwargs in (("blend", dict(layers={"conv1": 0.5, "conv4": 0.5})),
                                   ("conv1", dict(layer="conv1")), ("conv4", dict(layer="conv4")))}
    measured("layer blend conv1+conv4, log-gain of each layer's energy in the rendered audio: " + "; ".join(
        f"{label}: " + ", ".join(f"{name} {g:+.2f}" for name, g in per_layer.items())
        for label, per_layer in gains.items()))
    blend = gains["blend"]
    assert blend["conv1"] > gains["conv4"]["conv1"] and blend["conv4"] > gains["conv1"]["conv4"]
    assert blend["conv1"] > 0.3 and blend["conv4"] > 0.3


@pytest.mark.parametrize("attribute, value, fragment", [
    ("layers", {"conv9": 1.0}, "the blend names an unknown layer 'conv9': this model knows conv1, conv2, conv3"),
    ("targets", {"polka": 1.0}, "the blend names an unknown class 'polka'"),
    ("targets", {"jazz": -1.0}, "blend weight -1.0 of 'jazz' must be a number >= 0"),
    ("targets", {"jazz": 0.0}, "blend weights must have a positive sum"),
    ("targets", {}, "a blend is a non-empty dict"),
    ("channels", {99: 1.0}, "the blend names an unknown channel 99 of layer 'conv3': use 0..63"),
    ("octaves", 0, "octaves must be an integer in 1..4"),
    ("memory", 1.0, "memory must be a number in 0.0..0.95"),
])
def test_invalid_options_are_rejected(attribute, value, fragment):
    effect = DreamEffect()
    with pytest.raises(DreamfxError, match=None) as err:
        setattr(effect, attribute, value)
    assert fragment in str(err.value)
    assert effect.objective == "layer" and effect.octaves == 1 and effect.memory == 0.0  # nothing half-applied


def test_blend_and_single_objectives_replace_each_other():
    effect = DreamEffect(targets={"jazz": 0.7, "rock": 0.3})
    assert effect.objective == "class" and effect.target is None and effect.targets == {"jazz": 0.7, "rock": 0.3}
    effect.target = "metal"
    assert effect.targets is None and effect.target == "metal"
    effect.channels = {"3": 1.0, "4": 2.0}  # TOML keys are strings
    assert effect.objective == "channel" and effect.channels == {3: 1.0, 4: 2.0} and effect.channel is None
    weights = effect.settings.objective.weights(effect.spec)
    assert weights[3] == pytest.approx(1 / 3) and weights[4] == pytest.approx(2 / 3) and weights.sum() == 1
    effect.channels = None
    assert effect.objective == "layer"
    effect.layers = {"conv2": 1.0, "conv4": 1.0}
    assert effect.objective == "layers" and effect.settings.objective.graph_layer == "conv4"
    effect.layer = "conv1"  # e.g. a MIDI layer controller: back to one layer
    assert effect.objective == "layer" and effect.layers is None and effect.layer == "conv1"
    with pytest.raises(DreamfxError, match="a blend of layers runs on the torch backend only"):
        DreamEffect(layers={"conv2": 1.0}, backend="torchscript")
