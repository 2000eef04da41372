"""Frontends (linear, mel image, mel-in-the-loop), the deep variant and the reconstructions.

The comparison models in models/ are trained by training/train.py with the same data, split, epochs and seed
as the shipped one (see benchmarks/reports/fidelity.md for the figures).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dreamfx import DreamEffect, DreamfxError
from dreamfx.engine.backends import open_backend
from dreamfx.dream.step import ObjectiveGradient
from dreamfx.validate.metrics import measure_retention, snr_db
from dreamfx.nets.models import DreamNet, build_metadata, load_model
from dreamfx.engine.reconstruction import griffin_lim
from conftest import cli_output, excerpt
from test_engine import stream

MODELS = Path(__file__).resolve().parent.parent / "models"
COMPARISON = {"linear": MODELS / "linear.safetensors", "mel": MODELS / "mel.safetensors",
              "deep": MODELS / "mel_in_the_loop-deep.safetensors"}
SR = 44100


@pytest.fixture(scope="module")
def audio():
    return excerpt(3.0, SR)


@pytest.mark.parametrize("name", COMPARISON)
def test_comparison_model_dreams_through_the_streaming_engine(name, audio, measured):
    model = load_model(COMPARISON[name])
    expected = {"linear": ("linear", "compact"), "mel": ("mel", "compact"), "deep": ("mel_in_the_loop", "deep")}
    assert (model.meta["frontend"]["kind"], model.meta["variant"]) == expected[name]
    effect = DreamEffect(COMPARISON[name], intensity=0.8, iterations=4)
    offline = effect(audio, SR)
    for block in (64, 3000):
        np.testing.assert_allclose(stream(effect, audio, SR, block), offline, atol=1e-6)
    change = -snr_db(audio, offline)
    null = DreamEffect(COMPARISON[name], intensity=0.0)(audio, SR)
    measured(f"{name} model: dream changes the clip by {change:.1f} dB; null at intensity 0 {np.abs(null - audio).max():.1e}")
    assert change > -30 and np.abs(null - audio).max() < 1e-5


@pytest.mark.parametrize("frontend, architecture", [("linear", "compact"), ("mel_in_the_loop", "deep"),
                                                    ("linear", "deep")])
@pytest.mark.parametrize("graph_layer", ["conv2", "conv4", "logits"])
def test_hand_written_gradient_matches_autograd(frontend, architecture, graph_layer):
    """The exported dream step's backward pass, for every frontend and block shape."""
    torch.manual_seed(0)
    model = DreamNet(build_metadata(["a", "b", "c"], frontend=frontend, architecture=architecture))
    for module in model.modules():  # non-trivial batch-norm statistics
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    model.eval().requires_grad_(False).configure(SR)
    logmag = torch.log(torch.rand(2, model.stft.n_bins, 32) + 1e-3)
    weights = torch.rand(3 if graph_layer == "logits" else model.spec.channels[model.layer_names.index(graph_layer)])
    shift = torch.tensor(5)
    value, grad = ObjectiveGradient(model, graph_layer)(logmag, weights, shift)
    x = logmag.clone().requires_grad_()
    rolled = torch.roll(x, 5, dims=-1)
    if graph_layer == "logits":
        reference = model(rolled) @ weights
    else:
        reference = model.activations(rolled, until=graph_layer)[graph_layer].square().mean(dim=(2, 3)) @ weights
    (expected,) = torch.autograd.grad(reference.sum(), x)
    torch.testing.assert_close(value, reference.detach(), rtol=1e-4, atol=1e-5)
    assert float((grad - expected).abs().max() / expected.abs().max()) < 1e-4


def test_mel_image_model_dreams_on_torch_only(tmp_path):
    with pytest.raises(DreamfxError, match="dreams on the mel image, which only the torch backend does"):
        open_backend(COMPARISON["mel"], "onnxruntime")
    from dreamfx.export import export_model
    with pytest.raises(DreamfxError, match="has no exported dream step"):
        export_model(load_model(COMPARISON["mel"]), tmp_path / "mel.onnx")
    assert not (tmp_path / "mel.onnx").exists()


def test_linear_frontend_exports_and_matches_torch(audio):
    reference = DreamEffect(COMPARISON["linear"], iterations=3, backend="torch")(audio, SR)
    exported = DreamEffect(COMPARISON["linear"], iterations=3, backend="torchscript")(audio, SR)
    assert snr_db(reference, exported) > 60


def test_retention_is_measured_on_the_rendered_audio(audio):
    """Replace the rendered audio by the dry input: the audio gain drops to about 0, the spectral gain stays."""
    effect = DreamEffect(intensity=1.0)
    real = measure_retention(effect, audio, SR)
    dry = measure_retention(effect, audio, SR, reconstruct=lambda output, reports, engine: audio)
    assert dry.gain_spectral == pytest.approx(real.gain_spectral)
    assert real.gain_audio > 0.4 * real.gain_spectral and abs(dry.gain_audio) < 0.05 * real.gain_spectral


def test_phase_refinement_keeps_more_of_the_dream(audio, measured):
    plain = measure_retention(DreamEffect(intensity=1.0), audio, SR)
    refined = measure_retention(DreamEffect(intensity=1.0, reconstruction="phase-refine"), audio, SR)
    gl = measure_retention(DreamEffect(intensity=1.0), audio, SR, reconstruct=griffin_lim)
    measured(f"reconstruction, default model: retention input phase {plain.retention:.3f}, phase-refine "
             f"{refined.retention:.3f}, Griffin-Lim (offline) {gl.retention:.3f}; spectral convergence "
             f"{plain.spectral_convergence:.3f} / {refined.spectral_convergence:.3f} / {gl.spectral_convergence:.3f}")
    assert refined.retention > plain.retention and refined.spectral_convergence < plain.spectral_convergence
    assert np.isfinite(gl.output).all() and gl.spectral_convergence < 1
    null = DreamEffect(intensity=0.0, reconstruction="phase-refine")(audio, SR)
    assert np.abs(null - audio).max() < 1e-5
    with pytest.raises(DreamfxError, match="reconstruction must be one of input-phase, phase-refine"):
        DreamEffect(reconstruction="griffin-lim")


def test_consistency_keeps_the_dream_through_resynthesis(audio, measured):
    """Projecting every iteration onto what overlap-add delivers: far more of the dream survives, the output
    matches the dreamed magnitudes, and most of the plain dream's audible gain is kept."""
    plain = measure_retention(DreamEffect(intensity=1.0), audio, SR)
    consistent = measure_retention(DreamEffect(intensity=1.0, consistency=True), audio, SR)
    default = measure_retention(DreamEffect.from_preset("default"), audio, SR)
    measured(f"consistency, default model: retention {plain.retention:.3f} -> {consistent.retention:.3f}, spectral "
             f"convergence {plain.spectral_convergence:.3f} -> {consistent.spectral_convergence:.3f}, gain on the "
             f"audio {plain.gain_audio:.1f} -> {consistent.gain_audio:.1f}; default preset: {default.summary()}")
    assert consistent.retention > plain.retention + 0.1
    assert consistent.spectral_convergence < 0.5 * plain.spectral_convergence
    assert consistent.gain_audio > 0.5 * plain.gain_audio
    assert default.retention >= 0.9  # issue 5's goal for the default preset
    null = DreamEffect(intensity=0.0, consistency=True)(audio, SR)
    assert np.abs(null - audio).max() < 1e-5


def test_visualize_draws_the_figure(tmp_path):
    out = tmp_path / "dream.png"
    output = cli_output("visualize", "-o", str(out), "--seconds", "2", "--iterations", "4")
    assert "median gain after 3 iterations" in output
    gain = float(output.rsplit(" ", 1)[1].rstrip(")\n"))
    assert gain > 0.05  # the layer's energy rose over the iterations
    import matplotlib.image
    pixels = matplotlib.image.imread(str(out))
    assert out.stat().st_size > 20_000 and pixels.std() > 0.05
