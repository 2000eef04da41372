"""Export and backends: analytic gradient vs autograd, exported graphs vs torch, engine parity, bad files."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from dreamfx.engine.backends import model_format, open_backend
from dreamfx.dream.ascent import Objective, StepInputs, first_step_inputs
from dreamfx.dream.step import ObjectiveGradient
from dreamfx.plugin.effect import DreamEffect
from dreamfx.errors import DreamfxError
from dreamfx.validate.metrics import snr_db
from dreamfx.export import export_model
from dreamfx.files import SEAL_KEY
from dreamfx.nets.models import default_model_path, load_model
from dreamfx.dsp.spectral import LOG_EPS, analyze_signal
from conftest import cli_output, cli_subprocess, excerpt

SR = 44100
OBJECTIVES = {
    "layer-conv3": Objective("layer", "conv3"),
    "channel-conv2": Objective("channel", "conv2", 5),
    "class-metal": Objective("class", target="metal"),
}


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def model():
    m = load_model()
    m.configure(SR)
    return m


@pytest.fixture(scope="module")
def windows(model) -> torch.Tensor:
    """(4, n_bins, 40) linear magnitudes: 40-frame windows of the example clip's downmix at 4 places."""
    spec = analyze_signal(torch.from_numpy(excerpt(6.0, SR, start=1.0).mean(axis=0)), model.stft).abs()
    return torch.stack([spec[:, s:s + 40] for s in (30, 150, 300, 420)])


def step_inputs(model, objective: Objective, window: torch.Tensor, context: int) -> StepInputs:
    """A mid-dream step on real audio: delta from a fixed random draw, jitter 5 frames, smoothing on."""
    new = window[..., context:]
    delta = 0.2 * torch.randn(new.shape, generator=torch.Generator().manual_seed(1))
    inputs = first_step_inputs(torch.log(window[..., :context] + LOG_EPS), new, objective.weights(model.spec),
                               step=0.1, max_gain_db=12.0, smooth_bins=2, smooth_frames=1, preserve_level=True)
    return inputs._replace(delta=delta, shift=torch.tensor(5))


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory) -> dict:
    """Every artifact: {(format, what, objective name): path}, exported once for the module."""
    folder = tmp_path_factory.mktemp("exports")
    files = {}
    for fmt, suffix in (("onnx", ".onnx"), ("torchscript", ".pt")):
        for name, objective in OBJECTIVES.items():
            files[fmt, "dream-step", name] = folder / f"{name}{suffix}"
            export_model(model, files[fmt, "dream-step", name], fmt=fmt, objective=objective, sample_rate=SR)
        files[fmt, "classifier", None] = folder / f"classifier{suffix}"
        export_model(model, files[fmt, "classifier", None], fmt=fmt, what="classifier", sample_rate=SR)
    return files


@pytest.mark.parametrize("objective", [Objective("layer", f"conv{i}") for i in (1, 2, 4)]
                         + list(OBJECTIVES.values()), ids=lambda o: f"{o.kind}-{o.layer if o.kind != 'class' else o.target}")
def test_analytic_gradient_matches_autograd(model, windows, objective, measured):
    logmag = torch.log(windows + LOG_EPS)
    reference = logmag.clone().requires_grad_()
    value = objective(model, reference)
    (grad,) = torch.autograd.grad(value.sum(), reference)
    ours_value, ours_grad = ObjectiveGradient(model, objective.graph_layer)(logmag, objective.weights(model.spec),
                                                                         torch.tensor(0))
    error = relative_error(ours_grad, grad)
    assert error <= 1e-4, error
    assert relative_error(ours_value, value.detach()) <= 1e-5
    assert grad.abs().max() > 0  # a real gradient, not two zeros
    if objective == Objective():
        measured(f"analytic input gradient vs autograd (conv3, real windows): max relative error {error:.1e}")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_exported_dream_step_matches_torch(model, windows, exported, fmt, name, measured):
    objective = OBJECTIVES[name]
    path = exported[fmt, "dream-step", name]
    if fmt == "onnx":
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert json.loads(props["objective"]) == {"kind": objective.kind, "layer": objective.layer,
                                                   "channel": objective.channel, "target": objective.target,
                                                   "blend": list(objective.blend)}
        assert props["sample_rate"] == str(SR) and props["classes"].split(",") == list(model.class_names)
    backend, reference = open_backend(path), open_backend(model)
    assert backend.name == {"onnx": "onnxruntime", "torchscript": "torchscript"}[fmt]
    assert backend.default_objective == objective
    backend.prepare(SR)
    worst = 0.0
    for context in (24, 32):  # the time axis is dynamic: 24 + 16 and 32 + 8 frames
        inputs = step_inputs(model, objective, windows, context)
        delta, value = backend.step_function(objective)(inputs)
        ref_delta, ref_value = reference.step_function(objective)(inputs)
        change = ref_delta - inputs.delta
        assert change.abs().max() > 0.05  # the step moved
        worst = max(worst, relative_error(delta - inputs.delta, change), relative_error(value, ref_value))
    assert worst <= 1e-4, worst
    measured(f"{fmt} dream step ({name}) vs torch autograd: max relative error {worst:.1e}")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_classifier_matches_logits(model, windows, exported, fmt):
    path = exported[fmt, "classifier", None]
    logmag = torch.log(windows + LOG_EPS)
    for frames in (40, 24):
        x = logmag[..., :frames].contiguous()
        with torch.no_grad():
            reference = model(x)
        if fmt == "onnx":
            import onnxruntime
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            logits = torch.from_numpy(session.run(None, {"logmag": x.numpy()})[0])
        else:
            logits = torch.jit.load(str(path))(x)
        assert (logits - reference).abs().max() <= 1e-4
    with zipfile.ZipFile(exported["torchscript", "classifier", None]) as archive:
        meta = json.loads(archive.read(next(n for n in archive.namelist() if n.endswith("extra/dreamfx.json"))))
    assert meta["export"]["what"] == "classifier" and meta["stft"] == model.meta["stft"]


def test_every_backend_renders_the_example_alike(example, measured):
    """The whole clip through the engine on each backend, against torch: the analytic step matches autograd
    to ~1e-6 per iteration and the dream is a smooth function of its input (dreamfx.nets.surrogate), so the
    rounding differences stay under -60 dB (issue 13's bar; tests/test_smoothness.py does the presets)."""
    audio, sr = example
    reference = DreamEffect(intensity=0.8, backend="torch")(audio, sr)
    assert np.abs(reference - audio).max() > 0.05  # the dream is audible
    for backend in ("torchscript", "onnxruntime"):
        out = DreamEffect(intensity=0.8, backend=backend)(audio, sr)
        diff = np.abs(out - reference)
        within = float((diff <= 1e-4).mean())
        measured(f"{backend} vs torch, example clip: max diff {diff.max():.1e}, {100 * within:.2f}% of samples "
                 f"within 1e-4, SNR {snr_db(reference, out):.1f} dB")
        assert snr_db(reference, out) >= 60 and within >= 0.99, (snr_db(reference, out), within)


@pytest.mark.parametrize("backend", ["torchscript", "onnxruntime"])
def test_null_at_intensity_zero_on_every_backend(backend):
    audio = excerpt(1.0, SR)
    out = DreamEffect(intensity=0.0, backend=backend)(audio, SR)
    assert np.abs(out - audio).max() <= 1e-5


def test_round_trip_in_a_fresh_process(exported, workdir):
    """Export -> load in a new interpreter that never imports training code or the exporter -> render."""
    audio = excerpt(1.5, SR)
    np.save(workdir / "in.npy", audio)
    script = f"""
import sys, numpy as np
from dreamfx import DreamEffect
audio = np.load({str(workdir / 'in.npy')!r})
for i, path in enumerate(sys.argv[1:]):
    np.save({str(workdir)!r} + f'/out{{i}}.npy', DreamEffect(path, intensity=0.8)(audio, {SR}))
loaded = [m for m in sys.modules if m.split('.')[0] == 'training' or m.startswith('dreamfx.export')
          or m.startswith('torch.onnx._internal.exporter')]
assert not loaded, loaded
"""
    paths = [str(exported["onnx", "dream-step", "layer-conv3"]), str(exported["torchscript", "dream-step",
                                                                          "layer-conv3"])]
    result = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    # The same file renders alike in this process: thread pools of another size may round differently, which
    # the smooth dream keeps under -60 dB (issue 13's bar).
    for i, path in enumerate(paths):
        reference = DreamEffect(path, intensity=0.8)(audio, SR)
        out = np.load(workdir / f"out{i}.npy")
        assert snr_db(reference, out) >= 60 and np.abs(reference - audio).max() > 1e-2


def test_exported_file_refuses_what_it_was_not_built_for(exported):
    conv3 = exported["onnx", "dream-step", "layer-conv3"]
    effect = DreamEffect(conv3)
    with pytest.raises(DreamfxError, match="built for 44100 Hz, the audio is 48000 Hz"):
        effect(excerpt(0.5, 48000), 48000)
    with pytest.raises(DreamfxError, match="exported for objectives on 'conv3'; the request needs a class"):
        effect.target = "jazz"
    with pytest.raises(DreamfxError, match="request needs layer 'conv2'"):
        DreamEffect(conv3, layer="conv2")
    with pytest.raises(DreamfxError, match="runs on backend 'onnxruntime', not 'torchscript'"):
        DreamEffect(conv3, backend="torchscript")
    with pytest.raises(DreamfxError, match="classifier export; dreaming needs a dream step"):
        DreamEffect(exported["onnx", "classifier", None])
    effect.channel = 7  # another objective on the same graph layer is served
    assert effect.objective == "channel"


class _Booby:
    """Unpickling this would create a file: a model loader that unpickles fails the test."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _bad_files(folder: Path, exported: dict) -> dict:
    onnx_step = exported["onnx", "dream-step", "layer-conv3"].read_bytes()
    default = default_model_path().read_bytes()
    other = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "other",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])]))
    props = {p.key: p.value for p in onnx.load_from_string(onnx_step).metadata_props}
    other.metadata_props.add(key="dreamfx", value=props["dreamfx"])
    other_stft = onnx.load_from_string(onnx_step)
    meta = json.loads(props["dreamfx"])
    meta["stft"] = {"sample_rate": 22050, "n_fft": 512, "hop": 128}
    next(p for p in other_stft.metadata_props if p.key == "dreamfx").value = json.dumps(meta)
    edited = other_stft.SerializeToString()  # still sealed: the edit breaks the seal
    unsealed = [p for p in other_stft.metadata_props if p.key != SEAL_KEY]  # a file edited by hand, resaved
    del other_stft.metadata_props[:]
    other_stft.metadata_props.extend(unsealed)
    torch_pickle = folder / "weights.pt"
    torch.save({"w": torch.zeros(3), "boom": _Booby(folder / "pwned-torch")}, torch_pickle)
    return {
        "empty": (b"", "is empty"),
        "truncated onnx": (onnx_step[:len(onnx_step) // 2], "is not a safetensors, TorchScript or ONNX file"),
        "truncated safetensors": (default[:len(default) // 2], "is not a valid safetensors file"),
        "truncated torchscript": (exported["torchscript", "dream-step", "layer-conv3"].read_bytes()[:5000],
                                  "damaged"),
        "random bytes": (np.random.default_rng(0).bytes(4096), "is not a safetensors, TorchScript or ONNX file"),
        "onnx of another shape": (other.SerializeToString(), "a dream step takes (context_logmag"),
        "onnx with other STFT settings": (other_stft.SerializeToString(), "the graph takes 1025 STFT bins"),
        "sealed onnx with edited metadata": (edited, "do not match its seal"),
        "python pickle": (pickle.dumps(_Booby(folder / "pwned")), "looks like a Python pickle"),
        "torch.save pickle": (torch_pickle.read_bytes(), "zip archive without dreamfx metadata"),
    }


def test_bad_model_files_fail_cleanly_and_never_run_code(exported, workdir):
    for name, (data, message) in _bad_files(workdir, exported).items():
        path = workdir / f"bad-{name.replace(' ', '-')}.model"
        path.write_bytes(data)
        with pytest.raises(DreamfxError) as info:
            DreamEffect(path)
        assert message in str(info.value) and "\n" not in str(info.value), (name, str(info.value))
    assert not (workdir / "pwned").exists() and not (workdir / "pwned-torch").exists()


def test_cli_export_and_info(workdir, exported):
    run = cli_subprocess
    out = workdir / "clf.pt"
    result = run("export", "--format", "torchscript", "--what", "classifier", "--sample-rate", "22050", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert model_format(out) == "torchscript" and "classifier, 22050 Hz, 513 bins" in result.stdout
    assert "export: torchscript classifier for 22050 Hz" in cli_output("info", str(out))
    info = cli_output("info", str(out), "--json")
    assert '"what": "classifier"' in info and '"sample_rate": 22050' in info
    again = run("export", "--format", "torchscript", "-o", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr
    wrong = run("export", "--format", "onnx", "-o", str(workdir / "x.pt"))
    assert wrong.returncode == 2 and "use .onnx" in wrong.stderr
    step = exported["onnx", "dream-step", "class-metal"]
    info = cli_output("info", str(step))
    assert "objectives on logits, gradient temperatures ReLU 0.1, max 1" in info, info
    clip = workdir / "clip.wav"
    from dreamfx.audio_io import write_audio
    write_audio(clip, excerpt(1.0, SR), SR)
    result = run("process", str(clip), str(workdir / "o.wav"), "--model", str(step), "--backend", "onnxruntime")
    assert result.returncode == 0, result.stderr


def test_retention_is_measured_alike_on_the_onnxruntime_backend():
    """Backend.evaluate (the step graph's objective output) gives torch's objective values."""
    from dreamfx.validate.metrics import measure_retention
    audio = excerpt(3.0, SR)
    reports = {b: measure_retention(DreamEffect(intensity=0.8, backend=b), audio, SR)
               for b in ("torch", "onnxruntime")}
    torch_report, ort_report = reports["torch"], reports["onnxruntime"]
    assert abs(ort_report.objective_dry - torch_report.objective_dry) <= 1e-5 * torch_report.objective_dry
    assert abs(ort_report.retention - torch_report.retention) <= 0.02, (ort_report.summary(), torch_report.summary())
