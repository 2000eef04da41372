"""Presets are validated data: every mistake is one line naming file, key and what is allowed."""

from __future__ import annotations

import pedalboard
import pytest

from dreamfx import Chain, DreamEffect, DreamfxError, load_preset

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

BAD = [
    ("unknown top-level key", "colour = 'red'\n" + GOOD, "unknown key 'colour'"),
    ("wrong version", GOOD.replace("version = 1", "version = 7"), "version = 7; this dreamfx reads presets with version = 1"),
    ("unknown dream key", GOOD.replace("intensity = 0.5", "intensty = 0.5"), "dream.intensty is not a dream parameter"),
    ("out of range", GOOD.replace("intensity = 0.5", "intensity = 4.0"), "intensity must be a number in 0.0..1.0"),
    ("wrong type", GOOD.replace("intensity = 0.5", "intensity = 'loud'"), "intensity must be a number"),
    ("unknown layer", GOOD.replace('"conv2"', '"fc9"'), "unknown layer 'fc9'"),
    ("unknown plugin", GOOD.replace('"Gain"', '"Flanger"'), "chain[0].plugin = 'Flanger'"),
    ("unknown plugin parameter", GOOD.replace("gain_db", "gain_dbb"), "chain[0] (Gain).gain_dbb: unknown parameter; Gain takes gain_db"),
    ("bad plugin value", GOOD.replace("gain_db = -3.0", "gain_db = 'x'"), "chain[0] (Gain).gain_db = 'x': wrong type"),
    ("no dream stage", GOOD.replace('plugin = "dream"', 'plugin = "Reverb"'), "exactly one stage with plugin = \"dream\""),
    ("invalid TOML", "version = = 1", "invalid TOML"),
    ("missing model", GOOD.replace("[dream]", "[dream]\nmodel = 'missing.safetensors'"), "missing.safetensors not found"),
    ("unknown backend", GOOD.replace("[dream]", "[dream]\nbackend = 'tensorflow'"), "unknown backend 'tensorflow'"),
]


@pytest.mark.parametrize("case, text, message", BAD, ids=[b[0] for b in BAD])
def test_bad_presets_are_rejected_with_the_key_path(case, text, message, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(DreamfxError) as err:
        load_preset(path).build_chain()
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_good_preset_builds_chain_in_order(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    chain = load_preset(path).build_chain(iterations=3)
    assert isinstance(chain, Chain)
    assert isinstance(chain[0], pedalboard.Gain) and chain[0].gain_db == -3.0
    assert isinstance(chain[1], DreamEffect) and chain[1].layer == "conv2" and chain[1].iterations == 3
    assert chain[1].intensity == 0.5


def test_shipped_default_preset_loads():
    chain = load_preset("default").build_chain()
    assert len(chain.dream_effects) == 1
    with pytest.raises(DreamfxError, match="available presets are default"):
        load_preset("no-such-preset")


def test_preset_chooses_the_backend(tmp_path):
    path = tmp_path / "ort.toml"
    path.write_text(GOOD.replace("[dream]", "[dream]\nbackend = 'onnxruntime'"))
    dream = load_preset(path).build_chain().dream_effects[0]
    assert dream.backend.name == "onnxruntime"
    assert load_preset("default").build_chain(backend="torchscript").dream_effects[0].backend.name == "torchscript"
