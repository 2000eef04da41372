"""pedalboard compatibility: calling convention, validated attributes, and a Chain with native plugins."""

from __future__ import annotations

import numpy as np
import pedalboard
import pytest
from pedalboard.io import AudioFile

from dreamfx import Chain, DreamEffect, DreamfxError
from dreamfx.audio_io import read_audio, write_audio
from dreamfx.plugin.chain import PLUGIN_BLOCK
from dreamfx.validate.framework import stream
from conftest import excerpt


def spectral_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of log-magnitude spectra (natural log), mono downmix."""
    fa, fb = (np.abs(np.fft.rfft(x.mean(axis=0))) + 1e-6 for x in (a, b))
    return float(np.mean(np.abs(np.log(fa) - np.log(fb))))


def test_calling_convention_layouts_and_dtypes():
    sr = 22050
    stereo = excerpt(0.6, sr)
    effect = DreamEffect(iterations=2)
    mono_out = effect(stereo[0], sr)
    assert mono_out.shape == stereo[0].shape and mono_out.dtype == np.float32
    last = effect(np.ascontiguousarray(stereo.T), sr)            # (samples, channels), as pedalboard accepts
    first = effect.process(stereo.astype(np.float64), sr)       # float64 in, float32 out
    assert last.shape == stereo.T.shape and first.dtype == np.float32
    assert np.abs(last.T - first).max() <= 1e-6
    assert effect.is_effect and not effect.is_instrument


@pytest.mark.parametrize("name, value, fragment", [
    ("intensity", 1.5, "intensity must be a number in 0.0..1.0"),
    ("intensity", -0.1, "intensity must be"),
    ("iterations", 2.5, "iterations must be an integer"),
    ("mix", "half", "mix must be a number"),
    ("layer", "conv9", "unknown layer 'conv9': use one of conv1, conv2, conv3, conv4"),
    ("target", "polka", "unknown target class 'polka': this model knows classical"),
    ("channel", 999, "channel 999 is out of range for layer 'conv3'"),
])
def test_invalid_parameters_raise_one_line_errors(name, value, fragment):
    effect = DreamEffect()
    before = getattr(effect, name)
    with pytest.raises(DreamfxError) as err:
        setattr(effect, name, value)
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert getattr(effect, name) == before, "a rejected value must leave the parameter unchanged"


def test_objective_follows_layer_channel_target():
    effect = DreamEffect()
    assert effect.objective == "layer"
    effect.channel = 3
    assert effect.objective == "channel" and effect.channel == 3
    effect.target = "jazz"
    assert effect.objective == "class" and effect.channel is None
    effect.target = None
    assert effect.objective == "layer"


def test_chain_reverb_dream_compressor_renders_a_file(workdir, example):
    audio, sr = example
    src = workdir / "in.wav"
    write_audio(src, audio[:, :3 * sr], sr)
    clip, sr = read_audio(src)
    chain = Chain([pedalboard.Reverb(room_size=0.4, wet_level=0.2), DreamEffect(iterations=4),
                   pedalboard.Compressor(threshold_db=-18, ratio=3)])
    dst = workdir / "out.wav"
    write_audio(dst, chain(clip, sr), sr)
    with AudioFile(str(dst)) as f:
        out, out_sr = f.read(f.frames), f.samplerate
    assert out_sr == sr and out.shape == clip.shape and np.isfinite(out).all()
    without_dream = Chain([chain[0], chain[2]])
    without_dream.reset()
    plain = without_dream(clip, sr)
    assert spectral_distance(out, plain) > 0.05, "the dream stage must audibly change the chain's output"
    assert spectral_distance(out, clip) > spectral_distance(plain, clip)
    # the dream's latency: the FIFO that gives the pedalboard plugins whole chunks stands in for its own wait
    assert chain.latency_samples(sr) == chain[1].latency_samples(sr) > 0
    assert Chain([chain[0], chain[2]]).latency_samples(sr) == PLUGIN_BLOCK - 1  # plugins alone: pieces of 256


def block_pattern(name: str, n: int) -> int | list[int]:
    """Block sizes covering n samples: a constant size, or random sizes up to 512 or 8192 (as hosts send
    around loop points and automation)."""
    if name.isdigit():
        return int(name)
    sizes = np.random.default_rng(len(name)).integers(1, int(name.split("-")[1]) + 1, n).tolist()
    return sizes[:int(np.searchsorted(np.cumsum(sizes), n)) + 1]


@pytest.fixture(scope="module")
def whole_chain_render():
    """Chorus, Reverb, the default preset's dream, Compressor, Delay and Limiter, and its offline render of 3 s
    of the example clip (a real recording)."""
    sr = 44100
    audio = excerpt(3.0, sr)
    chain = Chain([pedalboard.Chorus(), pedalboard.Reverb(room_size=0.5), DreamEffect.from_preset("default"),
                   pedalboard.Compressor(threshold_db=-20, ratio=4), pedalboard.Delay(delay_seconds=0.25, mix=0.3),
                   pedalboard.Limiter(threshold_db=-3)])
    return chain, audio, sr, chain(audio, sr)


@pytest.mark.parametrize("pattern", ["1", "7", "256", "4096", "16384", "random-512", "random-8192"])
def test_a_whole_chain_streams_as_it_renders_offline(whole_chain_render, pattern, measured):
    """Streamed in blocks of any size, constant or varying, the chain's output is its offline render delayed
    by the reported latency; the same pedalboard plugins fed those blocks directly differ (the measure sees it)."""
    chain, audio, sr, offline = whole_chain_render
    latency, sizes = chain.latency_samples(sr), block_pattern(pattern, audio.shape[1])
    streamed = stream(chain, audio, sr, sizes)
    difference = float(np.abs(streamed[:, latency:] - offline[:, :audio.shape[1] - latency]).max())
    direct = stream(pedalboard.Chorus(), audio, sr, sizes)
    direct_difference = float(np.abs(direct - pedalboard.Chorus()(audio, sr)).max())
    measured(f"whole chain in blocks of {pattern}: max difference from the offline render {difference:.1e} "
             f"(latency {latency}); a Chorus fed the same blocks directly: {direct_difference:.2g}")
    assert np.abs(offline - audio).max() > 0.05  # the chain changed the audio: not a comparison of two inputs
    assert difference <= 1e-6
    if pattern.startswith("random"):
        assert direct_difference > 0.01


def test_chain_streaming_is_delayed_by_reported_latency():
    sr = 22050
    audio = excerpt(1.0, sr)
    chain = Chain([pedalboard.Gain(gain_db=-6), DreamEffect(intensity=0.0)])
    latency = chain.latency_samples(sr)
    chain.reset()
    out = np.concatenate([chain(audio[:, i:i + 512], sr, reset=False) for i in range(0, audio.shape[1], 512)], axis=1)
    expected = audio[:, :-latency] * 10 ** (-6 / 20)
    assert np.abs(out[:, latency:] - expected).max() <= 1e-5


def test_chain_is_a_list_that_rejects_non_plugins():
    chain = Chain([pedalboard.Reverb()])
    chain.append(DreamEffect(iterations=1))
    chain.insert(0, pedalboard.Gain())
    assert [type(p).__name__ for p in chain] == ["Gain", "Reverb", "DreamEffect"]
    with pytest.raises(DreamfxError, match="a Chain holds pedalboard plugins, LV2Plugins and DreamEffects"):
        chain.append("reverb")
    with pytest.raises(DreamfxError):
        chain[0] = 42


def test_nan_input_is_rejected_by_name():
    audio = excerpt(0.5, 22050)
    audio[1, 123] = np.nan
    with pytest.raises(DreamfxError, match="NaN/Inf \\(first at sample 123, channel 1\\)"):
        DreamEffect()(audio, 22050)


def test_an_empty_block_gives_an_empty_block_and_leaves_the_stream_alone():
    """Hosts send empty blocks: each layout comes back empty in the same shape, as pedalboard's plugins do, and a
    stream with an empty block in the middle renders as one without it."""
    sr = 22050
    audio = excerpt(1.0, sr)
    effect = DreamEffect(iterations=2)
    reverb = pedalboard.Reverb()
    for empty in (np.zeros((2, 0), np.float32), np.zeros((0, 2), np.float32), np.zeros(0, np.float32)):
        assert effect(empty, sr).shape == reverb(empty, sr).shape == empty.shape
        assert Chain([reverb, effect])(empty, sr).shape == empty.shape
    effect.reset()
    plain = np.concatenate([effect(audio[:, :9000], sr, reset=False), effect(audio[:, 9000:], sr, reset=False)], 1)
    effect.reset()
    gapped = np.concatenate([effect(audio[:, :9000], sr, reset=False), effect(audio[:, :0], sr, reset=False),
                             effect(audio[:, 9000:], sr, reset=False)], 1)
    assert np.abs(plain).max() > 0.01 and np.array_equal(plain, gapped)


def test_backend_and_device_are_chosen_at_construction_and_refused_later():
    sr = 22050
    audio = excerpt(0.5, sr)
    effect = DreamEffect(iterations=1)
    before = effect(audio, sr)
    for name, value in (("backend", "onnxruntime"), ("device", "cuda")):
        with pytest.raises(DreamfxError, match=rf"^{name} is chosen when the effect is built: "
                                               rf"DreamEffect\(model, {name}='{value}'"):
            setattr(effect, name, value)
    assert effect.backend.name == "torch" and str(effect.device) == "cpu"
    assert np.array_equal(effect(audio, sr), before)


def test_a_value_automated_at_time_zero_is_where_the_render_starts(tmp_path):
    """A MIDI file whose first event (time 0) sets CC1 (intensity) to 0: the first chunk is not dreamt at the
    preset's intensity on its way down; it starts at 0, the dry signal exactly (as a DAW starts automation)."""
    import mido
    from dreamfx.plugin.midi import Automation, MidiControl
    sr = 22050
    audio = excerpt(1.0, sr)
    song = mido.MidiFile(ticks_per_beat=960)
    song.tracks.append(mido.MidiTrack([mido.Message("control_change", control=1, value=0, time=0)]))
    song.save(tmp_path / "zero.mid")
    effect = DreamEffect(intensity=0.8, iterations=2)
    Automation(tmp_path / "zero.mid").attach(MidiControl(effect), sr, 2)
    out = effect(audio, sr)
    assert effect.intensity == 0.0
    assert np.abs(out - audio).max() <= 1e-5  # from the first sample on


def test_every_public_attribute_is_a_validated_parameter_or_refused():
    """A misspelt parameter, a read-only attribute or any attribute of a Chain: one line naming it (and the
    parameters, or what to write instead); the effect renders as before."""
    sr = 22050
    audio = excerpt(0.5, sr)
    effect = DreamEffect(iterations=1)
    before = effect(audio, sr)
    with pytest.raises(DreamfxError, match=r"^DreamEffect has no parameter 'intensitty': its parameters are "
                                           r"backend, band_hz, .*intensity, iterations"):
        effect.intensitty = 0.5
    with pytest.raises(DreamfxError, match=r"^DreamEffect.chunk_frames is read-only \(chosen when the effect is "
                                           r"built: DreamEffect\(model, \.\.\., chunk_frames=\.\.\.\)\)$"):
        effect.chunk_frames = 4
    for name in ("settings", "spec", "model_source", "stats", "class_names"):
        with pytest.raises(DreamfxError, match=rf"^DreamEffect.{name} is read-only"):
            setattr(effect, name, None)
    with pytest.raises(DreamfxError, match=r"^a Chain has no parameter 'intensity': set parameters on its plugins"):
        Chain([effect]).intensity = 0.5
    assert "intensitty" not in vars(effect) and effect.chunk_frames == 8
    assert np.array_equal(effect(audio, sr), before)


KNOBS = """version = 1
name = "knobs"
description = "A dream at rest, a reverb and a low-pass, their controls on controllers 20 and 21."
[dream]
intensity = 0.0
[midi.cc]
20 = "chain[1].wet_level"
21 = "chain[2].cutoff_frequency_hz"
[[chain]]
plugin = "dream"
[[chain]]
plugin = "Reverb"
[[chain]]
plugin = "LowpassFilter"
cutoff_frequency_hz = 10000.0
"""


def test_a_controller_sweeps_a_pedalboard_plugins_control_over_its_range(tmp_path):
    """A MIDI controller moves a pedalboard plugin's control (``chain[N].control``): in equal steps over its range
    (Reverb's wet level, 0..1), in equal ratios for a frequency (the low-pass cutoff over 20 Hz..10 kHz: the
    knob's middle, 64, is 460 Hz), and the sound follows; a cutoff above half the sample rate, where pedalboard's
    filter puts out inf, is refused in one line; a control no controller can sweep is refused in one line when the
    preset loads, naming those that can."""
    from dreamfx.plugin.midi import MidiControl
    from dreamfx.plugin.presets import load_preset
    from dreamfx.render.file import render_file
    sr = 22050
    (tmp_path / "knobs.toml").write_text(KNOBS)
    preset = load_preset(tmp_path / "knobs.toml")
    chain = Chain.from_preset(preset)
    control = MidiControl(chain.dream_effects[0], preset.midi_map(), chain=chain)
    control.apply([0xB0, 20, 127])
    assert chain[1].wet_level == 1.0
    control.apply([0xB0, 20, 0])
    assert chain[1].wet_level == 0.0
    control.apply([0xB0, 21, 64])
    assert chain[2].cutoff_frequency_hz == pytest.approx(20 * 500 ** (64 / 127), rel=1e-6)
    audio = excerpt(1.0, sr)
    control.apply([0xB0, 21, 127])
    open_filter = chain(audio, sr)
    control.apply([0xB0, 21, 0])
    closed = chain(audio, sr)
    above = lambda x: np.sum(np.abs(np.fft.rfft(x.mean(axis=0))[round(500 * x.shape[1] / sr):]) ** 2)  # noqa: E731
    assert above(closed) < 1e-3 * above(open_filter)  # at 20 Hz, nothing above 500 Hz is left (-30 dB at least)
    control.apply([0xB0, 21, 127])
    with pytest.raises(DreamfxError, match=r"chain\[2\]: LowpassFilter cutoff_frequency_hz = 10000 is above half the "
                                           r"sample rate \(8000 Hz\), where the filter blows up: lower it"):
        chain(excerpt(1.0, 16000), 16000)  # pedalboard's filter would put out inf
    write_audio(tmp_path / "low.wav", excerpt(1.0, 16000), 16000)
    with pytest.raises(DreamfxError, match=r"chain\[2\]: LowpassFilter cutoff_frequency_hz = 10000 is above half"):
        render_file(chain, tmp_path / "low.wav", tmp_path / "out.wav")
    assert not (tmp_path / "out.wav").exists()
    chain[2].cutoff_frequency_hz = 5000.0
    chain(excerpt(1.0, 16000), 16000)
    chain[2].cutoff_frequency_hz = 10000.0  # set from Python mid-stream: checked on every call, not only at a reset
    with pytest.raises(DreamfxError, match=r"chain\[2\]: LowpassFilter cutoff_frequency_hz = 10000 is above half"):
        chain(excerpt(0.5, 16000), 16000, reset=False)
    control.sample_rate = 16000  # the stream's rate known (live, a MIDI file's render): the knob stops below 8 kHz
    control.apply([0xB0, 21, 127])
    top = chain[2].cutoff_frequency_hz
    highest = max(f for f in (20 * 500 ** (v / 127) for v in range(128)) if f <= 8000)  # of the knob's 128 values
    assert top == pytest.approx(highest, rel=1e-6)
    swept = chain(excerpt(1.0, 16000), 16000)
    assert np.isfinite(swept).all() and np.std(swept) > 0.01
    (tmp_path / "knobs.toml").write_text(KNOBS.replace("chain[1].wet_level", "chain[1].freeze_mode"))
    with pytest.raises(DreamfxError, match=r"midi.cc.20 = 'chain\[1\].freeze_mode': Reverb has no control "
                                           r"'freeze_mode' a controller can sweep: use one of room_size, damping"):
        load_preset(tmp_path / "knobs.toml")
