"""The richer dream: octaves, dream memory, blends of classes or channels, a frequency band.

Each option must change the output measurably, keep the null test at intensity 0, and do what it claims,
measured on the signal: memory makes consecutive chunks' changes alike, octaves make the change less rough
from bin to bin, a blend of classes raises each class's logit in the rendered audio.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from dreamfx import DreamEffect, DreamfxError
from dreamfx.dream.ascent import Objective
from dreamfx.validate.metrics import snr_db
from dreamfx.dsp.spectral import LOG_EPS, analyze_signal
from conftest import excerpt
from test_engine import stream

SR = 44100
OPTIONS = {
    "octaves": dict(octaves=3),
    "memory": dict(memory=0.8),
    "class blend": dict(targets={"jazz": 0.5, "metal": 0.5}),
    "channel blend": dict(layer="conv2", channels={5: 1.0, 17: 0.5}),
    "band": dict(band_hz=(300.0, 3000.0)),
    "consistency": dict(consistency=True),
    "layer blend": dict(layers={"conv1": 0.5, "conv4": 0.5}),
    "canvas": dict(canvas_db=-30.0),  # changes a dense clip by only -23 dB: what it does is measured on sparse notes
}


@pytest.fixture(scope="module")
def audio():
    return excerpt(4.0, SR)


@pytest.mark.parametrize("name", [name for name in OPTIONS if name != "canvas"])
def test_option_changes_the_output_and_keeps_the_null_test(name, audio, measured):
    base = DreamEffect(intensity=1.0)(audio, SR)
    out = DreamEffect(intensity=1.0, **OPTIONS[name])(audio, SR)
    null = DreamEffect(intensity=0.0, **OPTIONS[name])(audio, SR)
    measured(f"dream option {name}: output differs from the plain dream by {-snr_db(base, out):.1f} dB; "
             f"null at intensity 0: max error {np.abs(null - audio).max():.1e}")
    assert -snr_db(base, out) > -20
    assert np.abs(null - audio).max() < 1e-5


@pytest.mark.parametrize("name", ["memory", "octaves", "class blend", "consistency", "layer blend", "canvas"])
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
    ("canvas_db", 0.0, "canvas_db must be None, 'off' or a number in -60.0..-10.0"),
    ("canvas_db", "loud", "canvas_db must be None, 'off' or a number in -60.0..-10.0"),
    ("canvas_db", np.array([-30.0, -20.0]), "canvas_db must be None, 'off' or a number in -60.0..-10.0"),
    ("canvas_slope", 4.0, "canvas_slope must be a number in 0.0..3.0"),
    ("canvas_slope", "off", "canvas_slope must be a number in 0.0..3.0"),
])
def test_invalid_options_are_rejected(attribute, value, fragment):
    effect = DreamEffect()
    with pytest.raises(DreamfxError, match=None) as err:
        setattr(effect, attribute, value)
    assert fragment in str(err.value)
    assert effect.objective == "layer" and effect.octaves == 1 and effect.memory == 0.0  # nothing half-applied
    assert effect.canvas_db is None
    effect.canvas_db = -30
    effect.canvas_db = "off"  # as a preset or --canvas writes "no canvas"
    assert effect.canvas_db is None


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


@pytest.mark.parametrize("slope, per_octave", [(1.0, 1.0), (2.0, 0.5)])  # pink: equal power per octave; brown: half
def test_the_canvas_is_noise_of_its_colour_that_follows_the_input_level(slope, per_octave):
    """Through the engine, with the dream's change bounded to 0 dB, the output is the input plus its canvas."""
    audio = excerpt(4.0, SR)
    audio[:, 2 * SR:] *= 0.01  # 40 dB quieter for the last 2 s
    canvas = DreamEffect(canvas_db=-30.0, canvas_slope=slope, max_gain_db=0.0)(audio, SR) - audio
    def level_db(a, b):
        return 10 * np.log10(np.square(a).sum() / np.square(b).sum())
    loud, quiet = slice(SR // 2, 2 * SR), slice(2 * SR + SR // 2, 4 * SR)  # past each change of level by 0.5 s
    freqs, power = scipy.signal.welch(canvas[0], SR, nperseg=8192)
    octaves = np.array([power[(freqs >= 100 * 2 ** i) & (freqs < 200 * 2 ** i)].sum() for i in range(7)])
    against_colour = octaves / per_octave ** np.arange(7)  # 100 Hz .. 12.8 kHz, over the colour's power per octave
    assert abs(level_db(canvas[:, loud], audio[:, loud]) + 30) < 1.5
    assert abs(level_db(canvas[:, quiet], audio[:, quiet]) + 30) < 1.5, "the canvas follows the input down"
    assert against_colour.max() < 1.5 * against_colour.min(), f"power per octave {octaves}"
    assert np.abs(canvas[0] - canvas[1]).max() < 1e-6, "one canvas for all channels, like the dream's gain"


def test_the_canvas_lets_the_dream_paint_where_a_sparse_input_leaves_gaps(measured):
    """A few decaying sine notes leave most STFT bins empty: a dream is a gain on what sounds, so without a canvas
    it can barely raise its class there; with one, the class rises far more in the rendered audio."""
    t = np.arange(3 * SR) / SR
    notes = sum(0.3 * np.sin(2 * np.pi * f * (t - 0.5 * i)) * np.exp(-4 * (t - 0.5 * i)) * (t >= 0.5 * i)
                for i, f in enumerate((220, 277, 330, 440, 330, 277)))
    audio = np.stack([notes, notes]).astype(np.float32)
    rise = {}
    for level in (None, -30.0):
        effect = DreamEffect(intensity=1.0, iterations=10, target="metal", canvas_db=level)
        rise[level] = class_logits(effect, effect(audio, SR))["metal"] - class_logits(effect, audio)["metal"]
    silence = DreamEffect(target="metal", canvas_db=-30.0)(np.zeros_like(audio), SR)
    null = DreamEffect(intensity=0.0, target="metal", canvas_db=-30.0)(audio, SR)
    measured(f"canvas on sparse notes: metal logit rises {rise[-30.0]:+.2f} with a -30 dB canvas, "
             f"{rise[None]:+.2f} without")
    assert rise[-30.0] > 2 * rise[None] and rise[-30.0] > 0.3
    assert not np.any(silence), "silence stays silent: the canvas follows the input's level"
    assert np.abs(null - audio).max() < 1e-5, "intensity 0 passes the input, canvas and all"


def test_a_canvas_dreamt_in_offline_batches_equals_streaming(audio):
    """Chunks dreamt ahead in batches get the same canvas as chunk by chunk (its state runs in chunk order)."""
    effect = DreamEffect(intensity=1.0, iterations=4, canvas_db=-30.0)
    streamed = stream(effect, audio, SR, 512)
    effect.offline_batch = 8
    batched = effect(audio, SR)
    assert effect.stats.batched_chunks > 0 and snr_db(streamed, batched) >= 60
