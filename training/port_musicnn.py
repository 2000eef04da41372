"""Port musicnn's VGG taggers (trained on real music) into dreamfx model files.

    pip download --no-deps musicnn==0.1.0 -d wheels/
    python -m venv tfenv && tfenv/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0 torch==2.13.0 -e .
    TF_USE_LEGACY_KERAS=1 tfenv/bin/python -m training.port_musicnn wheels/musicnn-0.1.0-py3-none-any.whl

Reads the TensorFlow 1 checkpoints shipped in the musicnn wheel (``MSD_vgg``,
``MTT_vgg``; ISC licence, Music Technology Group, Universitat Pompeu Fabra)
with ``tf.compat.v1.train.NewCheckpointReader`` and writes
``dreamfx/assets/{msd,mtt}_vgg.safetensors``: the weights in torch's layout and
dreamfx metadata describing the same network (musicnn/models.py: ``vgg``) and
its input (musicnn/extractor.py: 16 kHz, n_fft 512, hop 256, 96 Slaney mel
bands, ``log10(10000 * mel power + 1)``), with the tag names and the licence
notice.  TensorFlow is needed here and by training/musicnn_reference.py only,
never to run dreamfx.

Layouts: TensorFlow's VGG sees (batch, time, freq, 1) patches; dreamfx's
(batch, 1, freq, time).  A conv kernel [time, freq, in, out] becomes torch's
(out, in, freq, time); the dense layer over the flattened (2 time steps x 128
channels) pool5 output becomes a Conv1d with kernel 2 over time
(:class:`dreamfx.nets.models.DreamNet`, head ``dense-over-time``).
"""

from __future__ import annotations

import ast
import tempfile
import zipfile
from pathlib import Path

import click
import numpy as np
import torch

from dreamfx.nets.models import FORMAT, FORMAT_VERSION, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, DreamNet, save_model
from dreamfx.dsp.spectral import LOG_EPS

MODELS = {"MSD_vgg": ("msd_vgg.safetensors", "MSD_LABELS", "Million Song Dataset"),
          "MTT_vgg": ("mtt_vgg.safetensors", "MTT_LABELS", "MagnaTagATune")}
ASSETS = Path(__file__).resolve().parent.parent / "dreamfx" / "assets"
N_BLOCKS = 5


def musicnn_metadata(labels: list[str], data: str, source: str, roc_auc: float, licence: str) -> dict:
    """dreamfx metadata of a musicnn VGG tagger (musicnn/models.py: vgg, 128 filters)."""
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "architecture": "DreamNet", "variant": "musicnn-vgg",
        "task": "tagging", "channels": [128] * N_BLOCKS, "convs_per_block": 1, "unit": "conv-relu-bn",
        "conv_bias": True, "input_norm": "scalar", "batch_norm_eps": 1e-3, "dropout": 0.5,
        # max_pooling2d pool sizes / strides, (time, freq) in TensorFlow -> (freq, time) here
        "pools": [[1, 4, 2, 2], [2, 2, 2, 2], [2, 2, 2, 2], [2, 2, 2, 2], [4, 4, 4, 4]],
        "head": {"kind": "dense-over-time", "frames": 2},
        "classes": list(labels),
        # The engine's STFT: musicnn's 32 ms window at a quarter of it as hop (overlap-add needs 4x overlap);
        # the frontend hears every second frame: musicnn's 16 ms hop.
        "frontend": {"kind": "compressed_mel_power", "n_mels": 96, "fmin": 0.0, "fmax": 8000.0,
                     "magnitude_scale": 256.0, "compression": 10000.0, "frame_step": 2},
        "stft": {"sample_rate": 16000, "n_fft": 512, "hop": 128},
        # 128 new + 132 context frames = 130 musicnn frames (2.08 s), the shortest window with every frame pooled
        # up to one position of the dense layer
        "dream_window": {"chunk_frames": 128, "context_frames": 132},
        "window": "hann", "log_eps": LOG_EPS,
        "input": "natural log of |STFT| / sum(window) + log_eps", "sample_rates": [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE],
        "layers": [f"conv{i + 1}" for i in range(N_BLOCKS)] + ["logits"],
        "training": {"data": f"{data} (real recordings), trained by musicnn", "source": source,
                     "roc_auc": roc_auc, "outputs": "logits; sigmoid gives tag probabilities"},
        "licence": licence,
    }


def convert(reader, meta: dict) -> DreamNet:
    """A DreamNet with the checkpoint's weights (load_state_dict checks every shape and name)."""
    tensor = lambda name: torch.from_numpy(np.ascontiguousarray(reader.get_tensor(name), dtype=np.float32))  # noqa: E731
    state = {}

    def batch_norm(prefix: str, tf_name: str) -> None:
        for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                             ("running_var", "moving_variance")):
            state[f"{prefix}.{ours}"] = tensor(f"{tf_name}/{theirs}")
        state[f"{prefix}.num_batches_tracked"] = torch.tensor(0)

    batch_norm("input_norm", "batch_normalization")
    for i in range(N_BLOCKS):
        state[f"blocks.{i}.0.weight"] = tensor(f"{i + 1}CNN/kernel").permute(3, 2, 1, 0).contiguous()
        state[f"blocks.{i}.0.bias"] = tensor(f"{i + 1}CNN/bias")
        batch_norm(f"blocks.{i}.2", f"batch_normalization_{i + 1}")
    kernel = tensor("dense/kernel")                                   # (2 * 128, tags), index t * 128 + c
    state["head.weight"] = kernel.reshape(2, 128, -1).permute(2, 1, 0).contiguous()
    state["head.bias"] = tensor("dense/bias")
    model = DreamNet(meta)
    model.load_state_dict(state)
    return model.eval()


def unpack(wheel: Path, into: Path) -> Path:
    """Extract the wheel; returns the musicnn package folder."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(into)
    return into / "musicnn"


def labels_of(package: Path, name: str) -> list[str]:
    """A label list from musicnn/configuration.py, read without importing it."""
    tree = ast.parse((package / "configuration.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == name:
            return ast.literal_eval(node.value)
    raise KeyError(name)


def roc_auc_of(folder: Path) -> float:
    """The first AUC line of the checkpoint's experiment.result (ROC-AUC on the test set)."""
    return float(next(line for line in (folder / "experiment.result").read_text().splitlines()
                      if line.startswith("AUC")).split(":")[1])


@click.command()
@click.argument("wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=ASSETS, show_default=True)
def main(wheel: Path, output: Path) -> None:
    """Convert musicnn's MSD_vgg and MTT_vgg checkpoints from WHEEL (musicnn-0.1.0-py3-none-any.whl)."""
    import tensorflow as tf
    with tempfile.TemporaryDirectory() as tmp:
        package = unpack(wheel, Path(tmp))
        licence = (Path(tmp) / "musicnn-0.1.0.dist-info" / "LICENSE.md").read_text().strip()
        (output / "LICENSE-musicnn.txt").write_text(
            "The files msd_vgg.safetensors and mtt_vgg.safetensors are converted from the checkpoints of musicnn "
            "0.1.0\n(training/port_musicnn.py reproduces them from the wheel), under musicnn's licence:\n\n"
            + licence + "\n")
        for name, (filename, labels, data) in MODELS.items():
            reader = tf.compat.v1.train.NewCheckpointReader(str(package / name) + "/")
            meta = musicnn_metadata(labels_of(package, labels), data, f"musicnn 0.1.0 {name}",
                                    roc_auc_of(package / name), licence)
            model = convert(reader, meta)
            save_model(model, output / filename)
            values = sum(t.numel() for k, t in model.state_dict().items() if "num_batches" not in k)
            click.echo(f"{name}: {values} values (weights and batch-norm statistics) -> {output / filename}")


if __name__ == "__main__":
    main()
