"""Training data and the shipped model: real FluidSynth renders, reproducibility, held-out accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pedalboard.io import AudioFile

from dreamfx.errors import DreamfxError
from dreamfx.nets.models import default_model_path, load_model, read_metadata
from conftest import require_system
from training.dataset import logmag_spectrogram, scan
from training.genres import GENRES
from training.render_dataset import DEFAULT_SOUNDFONT, plan, render_jobs
from training.train import HOLDOUT_EVERY, SEED, evaluate


@pytest.fixture(scope="module")
def held_out_set(tmp_path_factory):
    """The training set's held-out clips (every 5th per genre), rendered afresh with FluidSynth."""
    require_system("fluidsynth", "fluidsynth fluid-soundfont-gm")
    if not DEFAULT_SOUNDFONT.is_file():
        pytest.fail(f"{DEFAULT_SOUNDFONT} missing: apt-get install -y fluid-soundfont-gm")
    root = tmp_path_factory.mktemp("genres")
    jobs = [j for j in plan(60, 6.0, SEED) if int(j[0].stem.split(".")[1]) % HOLDOUT_EVERY == HOLDOUT_EVERY - 1]
    render_jobs(root, jobs, 6.0, 22050, DEFAULT_SOUNDFONT, 2)
    return root


def test_rendered_set_has_gtzan_layout_and_is_reproducible(held_out_set, tmp_path):
    clips, classes = scan(held_out_set)
    assert classes == sorted(GENRES) and len(GENRES) >= 8
    assert len(clips) == 12 * len(GENRES)
    with AudioFile(str(clips[0].path)) as f:
        assert f.samplerate == 22050 and f.frames / f.samplerate >= 5.0
    # the same seed renders the same audio, bit for bit
    job = [j for j in plan(60, 6.0, SEED) if j[0] == clips[0].path.relative_to(held_out_set)]
    render_jobs(tmp_path, job, 6.0, 22050, DEFAULT_SOUNDFONT, 1)
    with AudioFile(str(tmp_path / job[0][0])) as a, AudioFile(str(clips[0].path)) as b:
        assert np.array_equal(a.read(a.frames), b.read(b.frames))
    # genres differ in sound, not only in name: mean spectra of two genres are far apart
    model = load_model()
    means = {c: torch.stack([logmag_spectrogram(x.path, model.stft).mean(1) for x in clips
                             if classes[x.label] == c]).mean(0) for c in ("classical", "metal")}
    assert (means["classical"] - means["metal"]).abs().mean() > 0.5


def test_shipped_model_reaches_80_percent_on_held_out_clips(held_out_set, measured):
    model = load_model()
    clips, classes = scan(held_out_set)
    assert tuple(classes) == model.class_names
    specs = [logmag_spectrogram(c.path, model.stft) for c in clips]
    result = evaluate(model, specs, np.array([c.label for c in clips]))
    measured(f"shipped model on {len(clips)} freshly rendered held-out clips: accuracy {result['accuracy']:.1%}")
    assert result["accuracy"] >= 0.8
    recorded = read_metadata(default_model_path())["training"]["held_out_accuracy"]
    assert abs(recorded - result["accuracy"]) < 0.02, "the figure in the model file must be reproducible"


def test_model_file_is_small_safe_and_self_describing(tmp_path):
    path = default_model_path()
    assert path.stat().st_size < 10 * 1024 * 1024
    meta = read_metadata(path)
    assert meta["frontend"]["kind"] == "mel_in_the_loop"
    assert meta["stft"] == {"sample_rate": 22050, "n_fft": 1024, "hop": 256}
    assert meta["layers"] == ["conv1", "conv2", "conv3", "conv4", "logits"]
    for name, data in [("empty", b""), ("random", np.random.default_rng(0).bytes(4096)),
                       ("truncated", path.read_bytes()[:5000]),
                       ("pickle", b"\x80\x04\x95" + b"cos\nsystem\n(S'echo pwned'\ntR."),
                       ("foreign", _foreign_safetensors(tmp_path))]:
        bad = tmp_path / f"{name}.safetensors"
        bad.write_bytes(data)
        with pytest.raises(DreamfxError) as err:
            load_model(bad)
        assert "\n" not in str(err.value) and str(bad) in str(err.value)


def _foreign_safetensors(tmp_path) -> bytes:
    from safetensors.torch import save_file
    p = tmp_path / "foreign.bin"
    save_file({"w": torch.zeros(3)}, str(p), metadata={"dreamfx": json.dumps({"format": "other"})})
    return p.read_bytes()


def test_evaluate_writes_scores_and_a_confusion_matrix(held_out_set, tmp_path):
    """training/evaluate.py on the freshly rendered held-out clips: the JSON agrees with the figure PNG's data."""
    from click.testing import CliRunner
    from training.evaluate import main
    result = CliRunner().invoke(main, [str(held_out_set), str(default_model_path()), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "default_model.json").read_text())
    windows = report["windows_32"]
    confusion = np.array(windows["confusion"])
    assert confusion.sum() == windows["n"] and windows["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    for i, c in enumerate(read_metadata(default_model_path())["classes"]):
        assert windows["recall"][c] == pytest.approx(confusion[i, i] / confusion[i].sum())
        assert windows["precision"][c] == pytest.approx(confusion[i, i] / confusion[:, i].sum())
    assert report["clips"]["accuracy"] >= 0.8 and windows["accuracy"] > 0.5
    figure = tmp_path / "default_model-confusion.png"
    assert figure.stat().st_size > 10_000
