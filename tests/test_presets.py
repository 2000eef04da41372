"""Presets are validated data: every mistake is one line naming file, key path, bad value and what is allowed;
every shipped preset round-trips through TOML exactly and renders the example clip cleanly."""

from __future__ import annotations

import numpy as np
import pedalboard
import pytest
from click.testing import CliRunner

from dreamfx import Chain, DreamEffect, DreamfxError, load_preset
from dreamfx.cli.commands import cli
from dreamfx.validate.metrics import snr_db
from conftest import cli_output, require_preset_plugins
from dreamfx.plugin.chain import stage_record
from dreamfx.plugin.presets import preset_names, save_preset
from dreamfx.recipe import validate_preset

GOOD = '''version = 1
name = "t"
[dream]
intensity = 0.5
layer = "conv2"
[[chain]]
plugin = "Gain"
gain_db = -3.0
[[chain]]
plugin = "dream"
'''


def edit(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


# (case, preset text, the part of the message that names key path, bad value and what is allowed)
BAD = [
    ("unknown top-level key", "colour = 'red'\n" + GOOD, "unknown key 'colour'; allowed top-level keys: version"),
    ("wrong version", edit("version = 1", "version = 7"), "version = 7: this dreamfx reads presets with version = 1"),
    ("name not a string", edit('name = "t"', "name = 3"), "name = 3: must be a string"),
    ("dream not a table", edit("[dream]\nintensity = 0.5\nlayer = \"conv2\"", "dream = 1"), "dream = 1: must be a table"),
    ("unknown dream key", edit("intensity = 0.5", "intensty = 0.5"),
     "dream.intensty is not a dream parameter; allowed: model, backend"),
    ("out of range", edit("intensity = 0.5", "intensity = 4.0"),
     "dream.intensity = 4.0: intensity must be a number in 0.0..1.0"),
    ("wrong type", edit("intensity = 0.5", "intensity = 'loud'"), "dream.intensity = 'loud': intensity must be a number"),
    ("integer expected", edit("intensity = 0.5", "iterations = 2.5"), "dream.iterations = 2.5: iterations must be an integer in 0..256"),
    ("bool expected", edit("intensity = 0.5", "preserve_level = 1"), "dream.preserve_level = 1: preserve_level must be True or False"),
    ("unknown layer", edit('"conv2"', '"fc9"'), "dream.layer = 'fc9': unknown layer 'fc9': use one of conv1, conv2, conv3, conv4"),
    ("channel out of range", edit('layer = "conv2"', 'layer = "conv2"\nchannel = 99'),
     "dream.channel = 99: channel 99 is out of range for layer 'conv2': use 0..31"),
    ("unknown class", edit("intensity = 0.5", "target = 'polka'"), "dream.target = 'polka': unknown target class 'polka': this model knows classical"),
    ("band upside down", edit("intensity = 0.5", "band_hz = [4000.0, 200.0]"),
     "dream.band_hz = [4000.0, 200.0]: band_hz must be two frequencies (low, high) with 0 <= low < high"),
    ("bad chunking", edit("intensity = 0.5", "chunk_frames = 5"), "[dream] chunk_frames + context_frames = 29 does not fit this model's pooling: use 24 or 32 "),
    ("missing model", edit("[dream]", "[dream]\nmodel = 'missing.safetensors'"),
     "dream.model = 'missing.safetensors': no such file (a relative path is relative to the preset file"),
    ("unknown backend", edit("[dream]", "[dream]\nbackend = 'tensorflow'"),
     "[dream] unknown backend 'tensorflow': use one of auto, torch, torchscript, onnxruntime"),
    ("unknown plugin", edit('"Gain"', '"Flanger"'), "chain[0].plugin = 'Flanger': use \"dream\", one of Bitcrush"),
    ("unknown plugin parameter", edit("gain_db", "gain_dbb"), "chain[0].gain_dbb: Gain has no parameter 'gain_dbb'; it takes gain_db"),
    ("plugin value of the wrong type", edit("gain_db = -3.0", "gain_db = 'x'"), "chain[0].gain_db = 'x': must be a number"),
    ("plugin enum", edit('plugin = "Gain"\ngain_db = -3.0', 'plugin = "LadderFilter"\nmode = "LPF48"'),
     "chain[0].mode = 'LPF48': use one of LPF12, HPF12, BPF12, LPF24, HPF24, BPF24"),
    ("no dream stage", edit('plugin = "dream"', 'plugin = "Reverb"'), "exactly one stage with plugin = \"dream\""),
    ("dream stage with parameters", edit('plugin = "dream"', 'plugin = "dream"\nintensity = 1.0'),
     "chain[1]: the dream stage takes its parameters from [dream]"),
    ("chain not an array", "chain = 'dream'\n" + GOOD.split("[[chain]]")[0], "chain must be an array of tables"),
    ("unknown MIDI key", GOOD + "[midi]\nchannel = 3\n", "midi.channel is not a MIDI setting; allowed: cc, notes, programs"),
    ("MIDI controller out of range", GOOD + "[midi.cc]\n200 = 'intensity'\n", "midi.cc.200: controller numbers are 0..127"),
    ("MIDI unknown parameter", GOOD + "[midi.cc]\n7 = 'volume'\n", "midi.cc.7 = 'volume': use one of intensity, mix"),
    ("MIDI program of an unknown preset", GOOD + "[midi]\nprograms = ['default', 'nope']\n", "unknown preset 'nope'"),
    ("unknown live key", GOOD + "[live]\nblocksize = 64\n", "live.blocksize is not a live setting; allowed: headroom_ms"),
    ("live headroom out of range", GOOD + "[live]\nheadroom_ms = -5\n",
     "live.headroom_ms = -5: must be a number in 0..1000"),
    ("invalid TOML", "version = = 1", "invalid TOML"),
    ("arrays nested 5000 deep", "a = " + "[" * 5000 + "]" * 5000, "invalid TOML (arrays or tables nested too deeply"),
    ("missing guide file", edit("intensity = 0.5", "intensity = 0.5\nguide = 'nosuch.ogg'"),
     "dream.guide = 'nosuch.ogg': no such file (a relative path is relative to the preset file)"),
]


@pytest.mark.parametrize("case, text, message", BAD, ids=[b[0] for b in BAD])
def test_bad_presets_are_rejected_with_the_key_path(case, text, message, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(DreamfxError) as err:
        validate_preset(path)
    text = str(err.value)
    assert message in text and text.startswith(str(path)) and "\n" not in text


def test_good_preset_builds_chain_in_order(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    chain = Chain.from_preset(path, iterations=3)
    assert isinstance(chain[0], pedalboard.Gain) and chain[0].gain_db == -3.0
    assert isinstance(chain[1], DreamEffect) and chain[1].layer == "conv2" and chain[1].iterations == 3
    assert chain[1].intensity == 0.5
    assert DreamEffect.from_preset(path).layer == "conv2"


def test_at_least_ten_distinct_presets_ship():
    names = preset_names()
    for name in names:
        require_preset_plugins(name)
    assert len(names) >= 10 and "default" in names
    presets = [load_preset(n) for n in names]
    assert all(p.name == n and p.description for p, n in zip(presets, names))
    assert len({p.description for p in presets}) == len(presets)
    with pytest.raises(DreamfxError, match="available presets are ambient-wash, .*default"):
        load_preset("no-such-preset")


def with_guide_resolved(preset) -> dict:
    """The preset's document with its guide's path made absolute (a saved preset points at the guide from its own
    folder)."""
    doc = preset.document()
    if "guide" in doc["dream"]:
        doc["dream"] = {**doc["dream"], "guide": str((preset.path.parent / doc["dream"]["guide"]).resolve())}
    return doc


@pytest.mark.parametrize("name", preset_names())
def test_shipped_preset_round_trips_exactly(name, tmp_path):
    """load -> save -> load gives the same document; a chain built from it saves back to the same parameters."""
    require_preset_plugins(name)
    first = load_preset(name)
    save_preset(first, tmp_path / "a.toml")
    again = load_preset(tmp_path / "a.toml")
    assert with_guide_resolved(again) == with_guide_resolved(first)

    chain = Chain.from_preset(again, **again.example_overrides())
    chain.save_preset(tmp_path / "b.toml", name, first.description, first.midi)
    rebuilt = Chain.from_preset(tmp_path / "b.toml")
    assert [type(p) for p in rebuilt] == [type(p) for p in chain]
    for built, original in zip(rebuilt, chain):
        if isinstance(original, DreamEffect):
            assert built.parameters() == original.parameters()
        else:
            assert stage_record(built) == stage_record(original)
    rebuilt.save_preset(tmp_path / "c.toml", name, first.description, first.midi)
    assert (tmp_path / "c.toml").read_text() == (tmp_path / "b.toml").read_text()


def dreams_as_delays(chain: Chain, audio: np.ndarray, sr: int) -> np.ndarray:
    """``chain`` with every dream replaced by the pure delay a dream is at intensity 0, at its place: the
    first dream's latency less the chunk the chain's FIFO waits for in its stead (see dreamfx.plugin.chain), a later
    one's whole latency; the other stages run on the same pieces as in the chain (the FIFO's, from the start:
    guitarix's amplifier, for one, renders differently on other pieces); the result advanced by the delays, as
    the chain compensates its latency at its output."""
    delayed, total, piece = audio, 0, chain.piece_samples(sr)
    for stage in chain:
        if isinstance(stage, DreamEffect):
            first = stage is chain.dream_effects[0] and chain.hosted_plugins
            delay = stage.latency_samples(sr) - (piece - 1 if first else 0)
            delayed, total = np.pad(delayed, ((0, 0), (delay, 0))), total + delay
        else:
            delayed = stage.process(delayed, sr, buffer_size=piece, reset=True)
    return delayed[:, total:]


@pytest.mark.parametrize("name", preset_names())
def test_shipped_preset_renders_the_example_clip(name, example, measured):
    """Finite, below 0 dBFS, audibly dreamed; at intensity 0 the chain nulls against the same chain with each
    dream replaced by a pure delay (a Chorus after the dream meets the same samples either way).  The clip's
    first 5 s (three renders of each of 30 presets: the suite's time)."""
    require_preset_plugins(name)
    audio, sr = example
    audio = audio[:, :5 * sr]
    preset = load_preset(name)
    chain = Chain.from_preset(preset, **preset.example_overrides())
    out = chain(audio, sr)
    without_dream = dreams_as_delays(Chain.from_preset(preset, **preset.example_overrides()), audio, sr)
    at_zero = Chain.from_preset(preset, intensity=0.0, **preset.example_overrides())(audio, sr)
    peak_db = 20 * np.log10(np.abs(out).max())
    dream_db = -snr_db(without_dream, out)  # level of what the dream changed, relative to the dry chain
    null_db = snr_db(without_dream, at_zero)
    measured(f"preset {name}: peak {peak_db:.2f} dBFS, dream change {dream_db:.1f} dB, null at intensity 0 "
             f"{null_db:.1f} dB")
    assert np.isfinite(out).all() and out.shape == audio.shape
    assert peak_db < 0
    assert dream_db > -30  # the dream is audible, not a rounding error
    assert null_db > 60


def test_band_confines_the_dream(example):
    """Outside band_hz (beyond the third-octave taper) the spectrum is the input's; inside it changes."""
    import torch
    audio, sr = example
    audio = audio[:, : 4 * sr]
    effect = DreamEffect(intensity=1.0, iterations=8, band_hz=(800.0, 3000.0), preserve_level=False)
    out = effect(audio, sr)

    def spectrum_db(x):
        s = torch.stft(torch.from_numpy(x.mean(0)), 2048, 512, window=torch.hann_window(2048), return_complex=True)
        return 20 * torch.log10(s.abs().mean(-1) + 1e-7).numpy()

    freqs = np.arange(1025) * sr / 2048
    change = np.abs(spectrum_db(out) - spectrum_db(audio))
    inside = change[(freqs > 800) & (freqs < 3000)].mean()
    outside = change[((freqs > 100) & (freqs < 400)) | ((freqs > 6000) & (freqs < 16000))].mean()
    assert inside > 1.0 and outside < 0.05 * inside, (inside, outside)


def test_presets_cli_lists_shows_validates_and_saves(tmp_path):
    for name in preset_names():
        require_preset_plugins(name)
    listing = cli_output("presets", "list")
    assert all(n in listing for n in preset_names())
    assert 'target = "metal"' in cli_output("presets", "show", "metal-hallucination")
    bad = tmp_path / "bad.toml"
    bad.write_text(edit("intensity = 0.5", "intensity = 4.0"))
    checked = CliRunner().invoke(cli, ["presets", "validate", str(bad), "default"], standalone_mode=False)
    assert f"invalid: {bad}: dream.intensity = 4.0" in checked.output and "ok: default" in checked.output
    assert isinstance(checked.exception, DreamfxError)
    cli_output("presets", "save", "-o", str(tmp_path / "mine.toml"), "--preset", "ambient-wash", "--intensity", "0.3",
               "--target", "jazz")
    mine = load_preset(tmp_path / "mine.toml")
    assert mine.dream["intensity"] == 0.3 and mine.dream["target"] == "jazz" and mine.name == "mine"
    assert [s["plugin"] for s in mine.chain] == [s["plugin"] for s in load_preset("ambient-wash").chain]
    assert mine.midi == load_preset("ambient-wash").midi


def test_objective_overrides_replace_the_presets_objective():
    assert Chain.from_preset("jazz-electronic-blend", target="metal").dream_effects[0].target == "metal"
    blend = Chain.from_preset("metal-hallucination", targets={"jazz": 1.0, "rock": 1.0}).dream_effects[0]
    assert blend.targets == {"jazz": 1.0, "rock": 1.0} and blend.target is None
    layer = Chain.from_preset("metal-hallucination", layer="conv2").dream_effects[0]
    assert layer.objective == "layer" and layer.layer == "conv2"
    channel = Chain.from_preset("neuron-voice", channel=3).dream_effects[0]
    assert channel.layer == "conv4" and channel.channel == 3 and channel.channels is None
    layers = Chain.from_preset("metal-hallucination", layers={"conv1": 1.0, "conv4": 1.0}).dream_effects[0]
    assert layers.objective == "layers" and layers.target is None and layers.layers == {"conv1": 1.0, "conv4": 1.0}


def test_cli_layer_blend_is_saved_and_loaded(tmp_path):
    cli_output("presets", "save", "-o", str(tmp_path / "mine.toml"), "--preset", "metal-hallucination", "--layer",
               "conv2=0.5,conv4=0.5")
    mine = load_preset(tmp_path / "mine.toml")
    assert mine.dream["layers"] == {"conv2": 0.5, "conv4": 0.5} and "target" not in mine.dream
    assert DreamEffect.from_preset(mine).layers == {"conv2": 0.5, "conv4": 0.5}


def test_preset_chooses_the_backend(tmp_path):
    path = tmp_path / "ort.toml"
    path.write_text(edit("[dream]", "[dream]\nbackend = 'onnxruntime'"))
    dream = Chain.from_preset(path).dream_effects[0]
    assert dream.backend.name == "onnxruntime"
    assert Chain.from_preset("default", backend="torchscript").dream_effects[0].backend.name == "torchscript"


def test_in_memory_model_cannot_be_saved(tmp_path):
    from dreamfx.nets.models import load_model, default_model_path
    chain = Chain([DreamEffect(load_model(default_model_path()))])
    with pytest.raises(DreamfxError, match="in-memory model"):
        chain.save_preset(tmp_path / "x.toml", "x")
    assert not (tmp_path / "x.toml").exists()
    assert Chain([DreamEffect()]).to_preset("y").dream["model"] == "default"
