"""The dreamfx CLI end to end, in a subprocess: real files in, real files out, one-line errors."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import AudioFile

from dreamfx.audio_io import write_audio
from conftest import DREAMFX, cli_subprocess, excerpt


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return cli_subprocess(*args, cwd=cwd, timeout=600)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def clip(workdir: Path) -> Path:
    path = workdir / "clip.wav"
    write_audio(path, excerpt(2.0, 44100), 44100)
    return path


def test_process_file_writes_output_and_keeps_input(clip, workdir):
    before = sha(clip)
    out = workdir / "out.wav"
    result = run("process", str(clip), str(out), "--intensity", "0.9", "--iterations", "4", "--layer", "conv2")
    assert result.returncode == 0, result.stderr
    assert sha(clip) == before
    with AudioFile(str(out)) as f, AudioFile(str(clip)) as g:
        wet, dry = f.read(f.frames), g.read(g.frames)
    assert wet.shape == dry.shape and np.isfinite(wet).all()
    assert np.abs(wet - dry).max() > 0.01
    assert "latency" in result.stdout


def test_process_folder_to_folder(workdir):
    src = workdir / "in"
    (src / "sub").mkdir(parents=True)
    write_audio(src / "a.wav", excerpt(1.0, 22050), 22050)
    write_audio(src / "sub" / "b.flac", excerpt(1.0, 48000, start=4.0), 48000)
    (src / "notes.txt").write_text("not audio")
    result = run("process", str(src), str(workdir / "out"), "--iterations", "2", "--target", "rock")
    assert result.returncode == 0, result.stderr
    assert sorted(p.relative_to(workdir / "out").as_posix() for p in (workdir / "out").rglob("*.*")) == \
        ["a.wav", "sub/b.flac"]
    with AudioFile(str(workdir / "out" / "sub" / "b.flac")) as f:
        assert f.samplerate == 48000 and f.frames == 48000


def test_info_prints_model_metadata():
    result = run("info")
    assert result.returncode == 0, result.stderr
    assert "model: default" in result.stdout and "8 classes: classical, country, electronic" in result.stdout
    full = run("info", "--json")
    for key in ('"classes"', '"stft"', '"layers"', '"held_out_accuracy"', "mel_in_the_loop"):
        assert key in full.stdout


def test_the_cli_starts_without_scipy_signal():
    """scipy.signal takes a second to import (pulling scipy.stats): the canvas imports it when it designs its
    filter, so a start of dreamfx that draws no canvas never pays for it."""
    result = subprocess.run([sys.executable, "-c", "import sys, dreamfx.cli; print(sorted(m for m in sys.modules "
                             "if m.startswith(('scipy.signal', 'scipy.stats'))))"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def nan_file(workdir: Path) -> Path:
    audio = excerpt(1.0, 22050)
    audio[0, 500] = np.nan
    path = workdir / "nan.wav"
    with AudioFile(str(path), "w", 22050, 2, bit_depth=32) as f:  # write_audio itself refuses NaN
        f.write(audio)
    return path


BAD_INPUTS = [
    ("missing file", lambda d, c: ["process", str(d / "nope.wav"), str(d / "o.wav")], "not found"),
    ("unsupported format", lambda d, c: ["process", str(d / "x.txt"), str(d / "o.wav")], "unsupported format .txt"),
    ("directory for a file", lambda d, c: ["process", str(c), str(d / "adir")], "is a directory"),
    ("NaN samples", lambda d, c: ["process", str(nan_file(d)), str(d / "o.wav")], "contains NaN/Inf"),
    ("unknown layer", lambda d, c: ["process", str(c), str(d / "o.wav"), "--layer", "conv7"], "unknown layer 'conv7'"),
    ("unknown class", lambda d, c: ["process", str(c), str(d / "o.wav"), "--target", "polka"], "unknown target class"),
    ("bad layer blend", lambda d, c: ["process", str(c), str(d / "o.wav"), "--layer", "conv2=half"],
     "--layer 'conv2=half': write name=value pairs"),
    ("intensity out of range", lambda d, c: ["process", str(c), str(d / "o.wav"), "--intensity", "3"],
     "intensity must be a number in 0.0..1.0"),
    ("canvas not a level", lambda d, c: ["process", str(c), str(d / "o.wav"), "--canvas", "loud"],
     "--canvas 'loud': give a level in dB, e.g. -30, or 'off'"),
    ("canvas too loud", lambda d, c: ["process", str(c), str(d / "o.wav"), "--canvas", "-3"],
     "canvas_db must be None, 'off' or a number in -60.0..-10.0, got -3.0"),
    ("canvas slope too steep", lambda d, c: ["process", str(c), str(d / "o.wav"), "--canvas-slope", "5"],
     "canvas_slope must be a number in 0.0..3.0, got 5.0"),
    ("output is the input", lambda d, c: ["process", str(c), str(c), "--overwrite"], "refusing to overwrite the input"),
    ("unwritable format", lambda d, c: ["process", str(c), str(d / "o.xyz")], "cannot write .xyz"),
    ("unknown preset", lambda d, c: ["process", str(c), str(d / "o.wav"), "--preset", "nosuch"], "unknown preset"),
    ("renamed preset", lambda d, c: ["process", str(c), str(d / "o.wav"), "--preset", "msd-heavy-metal"],
     "preset 'msd-heavy-metal' is now called 'msd-metal': write --preset msd-metal"),
    ("corrupt model", lambda d, c: ["process", str(c), str(d / "o.wav"), "--model", str(d / "x.txt")],
     "not a safetensors, TorchScript or ONNX file"),
    ("unknown chain stage", lambda d, c: ["process", str(c), str(d / "o.wav"), "--chain", "dream,Flanger"],
     "unknown stage 'Flanger'"),
]


@pytest.mark.parametrize("case, argv, message", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line_error_and_leaves_nothing(case, argv, message, clip, workdir):
    (workdir / "x.txt").write_text("this is not audio, nor a model")
    (workdir / "adir").mkdir()
    args = argv(workdir, clip)  # may create the bad input file
    before = {p: sha(p) for p in workdir.rglob("*") if p.is_file()}
    result = run(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dreamfx: error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    after = {p: sha(p) for p in workdir.rglob("*") if p.is_file()}
    assert after == before, "a failed run must not create, change or leave any file"


@pytest.mark.parametrize("seconds", [0.5, 4.0], ids=["while-it-loads", "while-it-renders"])
def test_ctrl_c_leaves_no_partial_output(seconds, workdir):
    """Ctrl-C half a second in lands while Python imports torch (~1.3 s here), four seconds in mid-render: the same
    line and exit either way."""
    import signal
    import time
    long = workdir / "long.wav"
    write_audio(long, np.tile(excerpt(5.0, 44100), 8), 44100)  # 40 s: long enough to interrupt
    out = workdir / "out.wav"
    # SIGINT's default action in the child, whatever this process inherited (a shell's background job ignores
    # SIGINT, and so would the child: then the render ran to the end)
    proc = subprocess.Popen([*DREAMFX, "process", str(long), str(out), "--iterations", "32"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(seconds)
    assert proc.poll() is None, "the render finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    # ended by SIGINT, as Python ends an uncaught Ctrl-C (a shell shows status 130), every time: with exit(130)
    # one interrupt in about fifteen ended by SIGINT all the same (dreamfx/cli/__init__.py says why)
    assert proc.returncode == -signal.SIGINT, (proc.returncode, err)
    assert "interrupted" in err and "Traceback" not in err
    assert sorted(p.name for p in workdir.iterdir()) == ["long.wav"]


def test_process_with_midi_automation(clip, workdir):
    """A MIDI file that turns the mod wheel (intensity) to 0 at once: after the first chunk's ramp, a null test."""
    import mido
    song = mido.MidiFile(ticks_per_beat=960)
    song.tracks.append(mido.MidiTrack([mido.Message("control_change", control=1, value=0, time=0)]))
    song.save(str(workdir / "off.mid"))
    automated_run = run("process", str(clip), str(workdir / "auto.wav"), "--chain", "dream", "--automation",
                        str(workdir / "off.mid"))
    assert automated_run.returncode == 0, automated_run.stderr
    assert run("process", str(clip), str(workdir / "plain.wav"), "--chain", "dream").returncode == 0
    with AudioFile(str(clip)) as f:
        dry = f.read(f.frames)
    with AudioFile(str(workdir / "auto.wav")) as f:
        automated = f.read(f.frames)
    with AudioFile(str(workdir / "plain.wav")) as f:
        plain = f.read(f.frames)
    after = int(0.2 * 44100)  # past the first chunk (93 ms), whose intensity ramps from the preset's to 0
    assert np.abs(plain[:, after:] - dry[:, after:]).max() > 0.05  # the dream is audible without automation
    assert np.abs(automated[:, after:] - dry[:, after:]).max() <= 1e-5
    bad = run("process", str(clip), str(workdir / "x.wav"), "--automation", str(clip))
    assert bad.returncode == 2 and "cannot read MIDI file" in bad.stderr and not (workdir / "x.wav").exists()


def test_export_takes_a_shipped_model_by_name(workdir):
    """`dreamfx export default` (the name presets use) exports the bundled model; a missing file names the
    shipped models and no option export lacks."""
    from dreamfx.engine.backends import read_model_metadata
    out = workdir / "default.pt"
    result = run("export", "default", "-o", str(out), "--format", "torchscript", "--what", "classifier")
    assert result.returncode == 0, result.stderr
    assert read_model_metadata(out)["export"]["what"] == "classifier"
    missing = run("export", str(workdir / "nope.safetensors"), "-o", str(workdir / "x.onnx"))
    assert missing.returncode == 2 and "default, msd-vgg, mtt-vgg" in missing.stderr
    assert "--model" not in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
