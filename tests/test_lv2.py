"""Hosted LV2 plugins: exact against lilv's own offline host (lv2apply), streamed as rendered offline in whole
chains, latency compensated, controls checked, saved in presets, moved by MIDI.  Real plugins from Debian's
packages (mda-lv2, swh-lv2, invada-studio-plugins-lv2), installed by .ci/run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import tomli_w

from conftest import cli_subprocess, excerpt, require_lv2, require_system
from dreamfx import Chain
from dreamfx.errors import DreamfxError
from dreamfx.plugin.lv2 import LV2Plugin
from dreamfx.plugin.midi import MidiControl
from dreamfx.plugin.presets import load_preset
from dreamfx.recipe import build_chain
from dreamfx.validate.framework import stream

SR = 48000
DRAGONFLY_ROOM = "urn:dragonfly:room"
MDA, SWH, INVADA = "http://drobilla.net/plugins/mda/", "http://plugin.org.uk/swh-plugins/", \
    "http://invadarecords.com/plugins/lv2/"
# (URI, Debian package, controls, mono plugin): three suites, and an EQ that reports its latency
PLUGINS = [(MDA + "Overdrive", "mda-lv2", {"drive": 0.6, "muffle": 0.3, "output": 0.4}, False),
           (SWH + "gverb", "swh-lv2", {"roomsize": 40.0, "revtime": 2.5, "taillevel": -12.0}, True),
           (INVADA + "compressor/stereo", "invada-studio-plugins-lv2",
            {"threshold": -18.0, "ratio": 6.0, "attack": 0.002, "gain": 6.0}, False),
           (SWH + "dj_eq", "swh-lv2", {"lo": -12.0, "mid": -20.0, "hi": 6.0}, False)]


def snr_db(out: np.ndarray, reference: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference ** 2) / max(np.sum((out - reference) ** 2), 1e-30)))


def lv2apply(tmp_path, audio: np.ndarray, uri: str, controls: dict) -> np.ndarray:
    """lilv's own offline host on ``audio`` (channels, n): (channels out, n)."""
    source, result = tmp_path / "in.wav", tmp_path / "out.wav"
    soundfile.write(source, audio.T, SR, subtype="FLOAT")
    options = [arg for symbol, value in controls.items() for arg in ("-c", symbol, repr(value))]
    subprocess.run([require_system("lv2apply", "lilv-utils"), "-i", str(source), "-o", str(result), *options, uri],
                   check=True, capture_output=True, timeout=120)
    return soundfile.read(result, dtype="float32", always_2d=True)[0].T


def lv2_preset(tmp_path, uri: str, controls: dict, base: str = "live-tight", intensity: float = 0.0):
    """A preset file: ``base``'s dream at ``intensity``, then the plugin with its controls."""
    lines = [line for line in (load_preset(base).path.read_text().split("[[chain]]")[0]).splitlines()
             if not line.startswith(("intensity", "name"))]
    lines.insert(lines.index("[dream]") + 1, f"intensity = {intensity}")
    text = "\n".join(lines) + '\n[[chain]]\nplugin = "dream"\n\n[[chain]]\nplugin = "lv2:' + uri + '"\n' + \
        "".join(f"{symbol} = {value!r}\n" for symbol, value in controls.items())
    path = tmp_path / "with-lv2.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("uri,package,controls,mono", PLUGINS, ids=[p[0].rsplit("/", 1)[-1] for p in PLUGINS])
def test_an_lv2_stage_equals_lilvs_own_host(uri, package, controls, mono, tmp_path, measured):
    """A chain of the plugin, and a preset of a dream at intensity 0 then the plugin, both equal lv2apply with the
    same controls after the reported latency (the chain compensates it; lv2apply does not)."""
    require_lv2(uri, package)
    audio = excerpt(3.0, SR)
    if mono:  # lv2apply feeds a 1-input plugin one channel; dreamfx gives it the channels' mean
        audio = np.repeat(audio[:1], 2, axis=0)
    reference = lv2apply(tmp_path, audio[:1] if mono else audio, uri, controls)
    plugin = LV2Plugin(uri, **controls)
    latency = plugin.latency_samples(SR)
    alone = Chain([plugin])(audio, SR)
    dreamt = Chain.from_preset(lv2_preset(tmp_path, uri, controls))(audio, SR)
    n = audio.shape[1] - latency
    scores = [snr_db(out[:, :n], reference[:, latency:latency + n]) for out in (alone, dreamt)]
    measured(f"LV2 {uri}: vs lv2apply {scores[0]:.0f} dB alone, {scores[1]:.0f} dB after a dream at intensity 0 "
             f"(latency {latency} samples)")
    assert min(scores) >= 60.0
    assert snr_db(alone, audio) < 40.0  # the plugin changed the sound: the comparison means something


def test_a_reported_latency_is_compensated_offline_and_delays_the_stream(tmp_path):
    """swh's artificial-latency plugin reports latency without delaying: the chain advances its output by it."""
    uri = SWH + "artificialLatency"
    require_lv2(uri, "swh-lv2")
    audio = excerpt(1.0, SR)
    chain = Chain([LV2Plugin(uri, delay=10.0)])
    assert chain[0].latency_samples(SR) == 480  # 10 ms at 48 kHz
    out = chain(audio, SR)
    assert np.array_equal(out[:, :-480], audio[:, 480:])
    chain.reset()
    streamed = np.concatenate([chain(audio[:, i:i + 1000], SR, reset=False) for i in range(0, audio.shape[1], 1000)],
                              axis=1)
    delay = chain.latency_samples(SR)  # the FIFO's piece minus one, plus the plugin's report
    assert np.array_equal(streamed[:, delay:], out[:, :audio.shape[1] - delay])


@pytest.mark.parametrize("blocks", [1, 7, 4096, "random"])
def test_a_chain_with_lv2_stages_streams_as_it_renders_offline(blocks):
    """mda's Overdrive before the dream, swh's gverb and Dragonfly's room (options, an atom port, rand()) after."""
    require_lv2(SWH + "gverb", "swh-lv2")
    require_lv2(MDA + "Overdrive", "mda-lv2")
    require_lv2(DRAGONFLY_ROOM, "dragonfly-reverb-lv2")
    chain = build_chain("live-tight", chain_spec=f"lv2:{MDA}Overdrive,dream,lv2:{SWH}gverb,lv2:{DRAGONFLY_ROOM},"
                                                 "Compressor")
    audio = excerpt(0.5 if blocks == 1 else 2.0, SR)
    offline = chain(audio, SR)
    latency = chain.latency_samples(SR)
    sizes = list(np.random.default_rng(3).integers(1, 5000, 100)) if blocks == "random" else blocks
    streamed = stream(chain, np.pad(audio, ((0, 0), (0, latency))), SR, sizes)[:, latency:]
    assert np.abs(streamed - offline).max() <= 1e-5
    assert snr_db(offline, audio) < 30.0  # the stages changed the sound


def test_controls_are_checked_and_bad_plugins_get_one_line(tmp_path):
    require_lv2(MDA + "Overdrive", "mda-lv2")
    with pytest.raises(DreamfxError, match=r"drive = 1\.5 is outside its range 0\.\.1$"):
        LV2Plugin(MDA + "Overdrive", drive=1.5)
    with pytest.raises(DreamfxError, match="has no control 'gain'; it takes drive, muffle, output"):
        LV2Plugin(MDA + "Overdrive").gain = 0.5
    with pytest.raises(DreamfxError, match="urn:nosuch is not installed"):
        LV2Plugin("urn:nosuch")
    with pytest.raises(DreamfxError, match="has 0 audio inputs and 2 outputs: dreamfx hosts effects of"):
        LV2Plugin(MDA + "DX10")  # an instrument
    preset = lv2_preset(tmp_path, MDA + "Overdrive", {"drive": 2.0})
    with pytest.raises(DreamfxError) as error:
        load_preset(preset)
    assert str(error.value) == (f"{preset}: chain[1]: LV2 plugin MDA Overdrive: drive = 2.0 is outside its range "
                                "0..1")
    soundfile.write(tmp_path / "in.wav", excerpt(0.5, SR).T, SR)
    run = cli_subprocess("process", "in.wav", "out.wav", "--chain", "dream,lv2:urn:nosuch", cwd=tmp_path)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "urn:nosuch is not installed" in run.stderr
    assert not (tmp_path / "out.wav").exists()


def test_output_controls_are_read_after_a_block():
    uri = INVADA + "compressor/stereo"
    require_lv2(uri, "invada-studio-plugins-lv2")
    plugin = LV2Plugin(uri, threshold=-30.0, ratio=10.0)
    quiet, loud = (excerpt(1.0, SR) * gain for gain in (0.05, 1.0))
    reduction = []
    for audio in (quiet, loud):
        plugin(audio, SR)
        reduction.append(plugin.grmeter)
    assert plugin.outputs["grmeter"] == reduction[-1]
    assert reduction[1] < reduction[0] - 3.0  # the meter reads the gain change in dB: more reduction when louder


def test_a_chain_with_an_lv2_stage_saves_as_a_preset_that_renders_the_same(tmp_path):
    require_lv2(INVADA + "compressor/stereo", "invada-studio-plugins-lv2")
    chain = build_chain("live-tight", chain_spec=f"dream,lv2:{INVADA}compressor/stereo")
    chain[1].threshold, chain[1].ratio = -20.0, 4.0
    chain.save_preset(tmp_path / "saved.toml", "saved")
    stage = load_preset(tmp_path / "saved.toml").chain[1]
    assert stage["plugin"] == f"lv2:{INVADA}compressor/stereo" and stage["threshold"] == -20.0
    audio = excerpt(2.0, SR)
    assert np.array_equal(Chain.from_preset(tmp_path / "saved.toml")(audio, SR), chain(audio, SR))


def test_a_plugins_own_state_is_saved_in_the_preset_and_restored(tmp_path):
    """Dragonfly's room keeps its chosen preset as LV2 state: saved as Turtle beside the controls, restored, and
    the preset renders the same bit for bit (libc's rand(), which it draws from, is seeded per instance)."""
    require_lv2(DRAGONFLY_ROOM, "dragonfly-reverb-lv2")
    chain = build_chain("live-tight", chain_spec=f"dream,lv2:{DRAGONFLY_ROOM}")
    assert '<urn:distrho:preset> "Medium Clear Room"' in chain[1].state
    chain[1].state = chain[1].state.replace("Medium Clear Room", "Large Dark Room")
    chain[1].size = 20.0
    chain.save_preset(tmp_path / "room.toml", "room")
    stage = load_preset(tmp_path / "room.toml").chain[1]
    assert '"Large Dark Room"' in stage["lv2_state"] and stage["size"] == 20.0
    audio = excerpt(2.0, SR)
    rebuilt = Chain.from_preset(tmp_path / "room.toml")
    assert np.array_equal(rebuilt(audio, SR), chain(audio, SR))
    assert np.array_equal(rebuilt(audio, SR), rebuilt(audio, SR))
    for broken, message in [
            ("not Turtle", "LV2 plugin Dragonfly Room Reverb: its saved state is not valid Turtle of a state of this "
                           "plugin (lv2_state in the preset): save the preset again"),
            (stage["lv2_state"].replace(DRAGONFLY_ROOM, "urn:other"), "LV2 plugin Dragonfly Room Reverb: its saved "
             "state is not valid Turtle of a state of this plugin (lv2_state in the preset): save the preset again"),
            ("<urn:x> a <urn:y> .", f"LV2 plugin {DRAGONFLY_ROOM} crashed in a trial run in a child process "
                                    "(SIGSEGV, restoring its saved state): dreamfx does not host it")]:  # lilv's crash
        (tmp_path / "broken.toml").write_text((tmp_path / "room.toml").read_text().replace(
            tomli_w.dumps({"lv2_state": stage["lv2_state"]}), tomli_w.dumps({"lv2_state": broken})))
        with pytest.raises(DreamfxError) as error:
            load_preset(tmp_path / "broken.toml")
        assert str(error.value) == f"{tmp_path / 'broken.toml'}: chain[1]: {message}"


def test_a_midi_controller_moves_an_lv2_control_over_its_range(tmp_path):
    require_lv2(MDA + "Overdrive", "mda-lv2")
    path = lv2_preset(tmp_path, MDA + "Overdrive", {"drive": 0.0}, intensity=0.8)
    path.write_text(path.read_text().replace("[midi.cc]", '[midi.cc]\n7 = "chain[1].drive"'))
    preset = load_preset(path)
    chain = Chain.from_preset(preset)
    control = MidiControl(chain.dream_effects[0], preset.midi_map(), chain=chain)
    audio = excerpt(2.0, SR)
    before = chain(audio, SR)
    control.apply([0xB0, 7, 127])
    assert chain[1].drive == 1.0
    control.apply([0xB0, 7, 64])
    assert chain[1].drive == pytest.approx(64 / 127)
    assert snr_db(chain(audio, SR), before) < 30.0  # the drive changed the sound
    path.write_text(path.read_text().replace('7 = "chain[1].drive"', '7 = "chain[0].drive"'))
    with pytest.raises(DreamfxError, match=r"midi.cc.7 = 'chain\[0\].drive': that stage has no control 'drive' "
                                           r"a controller can sweep"):
        load_preset(path)


def test_midi_learn_binds_a_controller_to_an_lv2_control(tmp_path):
    """Learning a plugin's control binds the next controller moved to it (over the port's range); a preset switch
    to a chain without that control leaves the controller unbound there, and bound again on the way back; a
    control the chain lacks cannot be learned (one line)."""
    require_lv2(MDA + "Overdrive", "mda-lv2")
    preset = load_preset(lv2_preset(tmp_path, MDA + "Overdrive", {"drive": 0.0}))
    chain = Chain.from_preset(preset)
    control = MidiControl(chain.dream_effects[0], preset.midi_map(), chain=chain)
    control.learn("chain[1].drive")
    control.apply([0xB0, 20, 127])
    assert control.learned == [(20, "chain[1].drive")] and chain[1].drive == 1.0
    control.apply([0xB0, 20, 32])
    assert chain[1].drive == pytest.approx(32 / 127)
    plain = Chain.from_preset("default")
    control.retarget(plain.dream_effects[0], load_preset("default").midi_map(), chain=plain)
    assert 20 not in control.map.cc
    control.apply([0xB0, 20, 127])  # nothing to move here, and no error
    control.retarget(chain.dream_effects[0], preset.midi_map(), chain=chain)
    control.apply([0xB0, 20, 127])
    assert chain[1].drive == 1.0
    for name, message in [("chain[1].nosuch", "that stage has no control 'nosuch' a controller can sweep"),
                          ("chain[7].drive", "that stage has no control 'drive' a controller can sweep"),
                          ("drive", "use one of intensity, mix, iterations, step, layer or a stage's control")]:
        with pytest.raises(DreamfxError, match=re.escape(f"cannot learn {name!r}: {message}")):
            control.learn(name)


def test_dreamfx_plugins_lists_lv2_plugins_and_one_plugins_controls():
    require_lv2(MDA + "Overdrive", "mda-lv2")
    listing = cli_subprocess("plugins", timeout=120)
    assert f"lv2:{MDA}Overdrive  MDA Overdrive" in listing.stdout.splitlines()
    one = cli_subprocess("plugins", f"lv2:{MDA}Overdrive", timeout=120)
    assert "  drive = 0  (Drive; float, 0..1)" in one.stdout.splitlines()


def test_vst3_stages_load_through_pedalboard_or_say_which_file_is_missing(tmp_path):
    """No VST3 plugin is packaged for Debian (only VST2 builds): what runs here is the path a preset names; with a
    .vst3 in the standard folders the test loads it."""
    from dreamfx.plugin.hosted import vst3_files
    with pytest.raises(DreamfxError, match=r"VST3 plugin .*nosuch\.vst3 not found \(dreamfx plugins lists"):
        build_chain("live-tight", chain_spec="dream,vst3:/nosuch.vst3")
    found = vst3_files()
    if not found:
        pytest.skip("no VST3 plugin installed here (Debian packages none): loading one was not run")
    chain = build_chain("live-tight", chain_spec=f"dream,vst3:{found[0]}")
    assert chain(excerpt(1.0, SR), SR).shape == (2, SR)


@pytest.fixture(scope="module")
def faulty_plugin(tmp_path_factory):
    """LV2_PATH holding tests/data/faulty.lv2 built with gcc (a real plugin that crashes or outputs NaN on
    request), then the system's plugins."""
    gcc = require_system("gcc", "gcc")
    require_lv2(MDA + "Overdrive", "mda-lv2")
    root = tmp_path_factory.mktemp("lv2")
    bundle = root / "faulty.lv2"
    shutil.copytree(Path(__file__).parent / "data" / "faulty.lv2", bundle)
    subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-o", str(bundle / "faulty.so"), str(bundle / "faulty.c")],
                   check=True, timeout=120)
    return {**os.environ, "LV2_PATH": f"{root}:/usr/lib/lv2"}


@pytest.mark.parametrize("control,message", [
    ("crash", "LV2 plugin urn:dreamfx:test:faulty crashed in a trial run in a child process (SIGSEGV): dreamfx "
              "does not host it"),
    ("nan", "LV2 plugin dreamfx faulty test plugin (urn:dreamfx:test:faulty) produced NaN or Inf: check its "
            "controls (crash=0, nan=1)")], ids=["crash", "nan"])
def test_a_plugin_that_crashes_or_outputs_nan_gets_one_line_and_nothing_is_written(control, message, faulty_plugin,
                                                                                   tmp_path, measured):
    soundfile.write(tmp_path / "in.wav", excerpt(0.5, SR).T, SR)
    preset = tmp_path / "faulty.toml"
    preset.write_text(f'version = 1\n[dream]\nintensity = 0.0\n[[chain]]\nplugin = "dream"\n[[chain]]\n'
                      f'plugin = "lv2:urn:dreamfx:test:faulty"\n{control} = 1.0\n')
    started = time.perf_counter()
    run = cli_subprocess("process", "in.wav", "out.wav", "--preset", str(preset), cwd=tmp_path, env=faulty_plugin)
    measured(f"LV2 faulty plugin ({control}): refused in {time.perf_counter() - started:.1f} s")
    assert run.returncode == 2
    assert run.stderr == f"dreamfx: error: {preset}: chain[1]: {message}\n"
    assert sorted(os.listdir(tmp_path)) == ["faulty.toml", "in.wav"]  # no output, not even a temporary file


def test_nan_from_a_plugin_after_its_trial_is_one_line_too(faulty_plugin):
    """The trial runs the controls a plugin starts with; a control moved later (a MIDI controller) is caught by
    the output check."""
    script = ("import numpy as np; from dreamfx.plugin.lv2 import LV2Plugin\n"
              "plugin = LV2Plugin('urn:dreamfx:test:faulty')\nplugin(np.ones((2, 512), np.float32), 48000)\n"
              "plugin.nan = 1\nplugin(np.ones((2, 512), np.float32), 48000, reset=False)")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=faulty_plugin,
                         timeout=120)
    assert run.returncode == 1
    assert run.stderr.splitlines()[-1] == ("dreamfx.errors.DreamfxError: LV2 plugin dreamfx faulty test plugin "
                                           "(urn:dreamfx:test:faulty) produced NaN or Inf: check its controls "
                                           "(crash=0, nan=1)")


def test_the_validator_passes_a_preset_with_an_lv2_stage(tmp_path, measured):
    """The validator's quick battery on live-tight's dream into mda's Overdrive (CI runs every check on metal-amp,
    whose chain hosts guitarix's amplifier)."""
    require_lv2(MDA + "Overdrive", "mda-lv2")
    preset = lv2_preset(tmp_path, MDA + "Overdrive", {"drive": 0.4}, intensity=0.8)
    run = cli_subprocess("validate", str(preset), "--strictness", "1", "--json", timeout=900)
    report = json.loads(run.stdout)  # the plugins' chatter stays off stdout
    measured(f"dreamfx validate --strictness 1 on a preset with an LV2 stage: {report['passed']} passed, "
             f"{report['failed']} failed")
    assert run.returncode == 0 and report["failed"] == 0 and report["passed"] >= 15, run.stdout[-2000:]


def test_a_shipped_preset_whose_plugin_is_missing_names_its_package(tmp_path):
    """metal-amp hosts guitarix's amplifier: where it is not installed, one line says which package has it."""
    soundfile.write(tmp_path / "in.wav", excerpt(0.5, SR).T, SR)
    (tmp_path / "no-plugins").mkdir()
    run = cli_subprocess("process", "in.wav", "out.wav", "--preset", "metal-amp", cwd=tmp_path,
                         env={**os.environ, "LV2_PATH": str(tmp_path / "no-plugins")})
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "chain[2]: LV2 plugin http://guitarix.sourceforge.net/plugins/gx_amp#GUITARIX is not installed" in run.stderr
    assert "Debian package guitarix-lv2: apt-get install guitarix-lv2" in run.stderr
    assert sorted(os.listdir(tmp_path)) == ["in.wav", "no-plugins"]
