"""Train a genre classifier: the default mel-in-the-loop model, or another frontend / a deeper variant.

Read top to bottom: configuration, data, model, training loop, held-out
evaluation, save.  Reproduce the shipped model (render + train, about 6 min on
2 CPU cores):

    python -m training.render_dataset data/genres
    python -m training.train data/genres -o dreamfx/assets/default_model.safetensors

and the frontend comparison (same data, split, epochs and seed; models/):

    python -m training.train data/genres --frontend linear -o models/linear.safetensors
    python -m training.train data/genres --frontend mel -o models/mel.safetensors
    python -m training.train data/genres --arch deep -o models/mel_in_the_loop-deep.safetensors
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import click
import numpy as np
import torch
import torch.nn.functional as F

from dreamfx.nets.models import ARCHITECTURES, DreamNet, build_metadata, save_model
from dreamfx.dsp.frontends import FRONTENDS
from training.dataset import logmag_spectrogram, scan, split
from training.evaluate import DREAM_WINDOW, HOLDOUT_EVERY, predictions, scores

# ---- configuration --------------------------------------------------------
SEED = 2026
EPOCHS = 40
BATCH = 32
CROP_FRAMES = 128          # ~1.5 s windows at 22.05 kHz / hop 256
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-3
GAIN_JITTER_DB = 6.0       # random level change per example
TRAINABLE_FRONTENDS = [k for k in FRONTENDS if k != "features"]


def evaluate(model: DreamNet, specs: list[torch.Tensor], labels: np.ndarray, window: int | None = None) -> dict:
    """Scores (accuracy, precision, recall, confusion) on whole clips or ``window``-frame windows."""
    return scores(*predictions(model, specs, labels, window), model.class_names)


@click.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--epochs", default=EPOCHS, show_default=True)
@click.option("--frontend", type=click.Choice(TRAINABLE_FRONTENDS), default="mel_in_the_loop", show_default=True)
@click.option("--arch", type=click.Choice(list(ARCHITECTURES)), default="compact", show_default=True)
def main(data: Path, output: Path, epochs: int, frontend: str, arch: str) -> None:
    """Train on the GTZAN-layout folder DATA and write the model to OUTPUT."""
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    started = time.time()

    # ---- data ---------------------------------------------------------------
    clips, classes = scan(data)
    train_clips, test_clips = split(clips, HOLDOUT_EVERY)
    meta = build_metadata(classes, frontend=frontend, architecture=arch)
    model = DreamNet(meta)
    stft = model.stft
    with click.progressbar(clips, label="computing spectrograms") as bar:
        specs = {c.path: logmag_spectrogram(c.path, stft) for c in bar}
    train_specs = [specs[c.path] for c in train_clips]
    train_labels = np.array([c.label for c in train_clips])
    test_specs = [specs[c.path] for c in test_clips]
    test_labels = np.array([c.label for c in test_clips])

    def batch_of(indices):
        xs = []
        for i in indices:
            spec = train_specs[i]
            start = rng.integers(0, spec.shape[1] - CROP_FRAMES + 1)
            gain = rng.uniform(-GAIN_JITTER_DB, GAIN_JITTER_DB) / 20 * np.log(10)
            xs.append(spec[:, start:start + CROP_FRAMES] + gain)
        return torch.stack(xs), torch.from_numpy(train_labels[indices])

    # ---- training -------------------------------------------------------------
    steps_per_epoch = len(train_specs) // BATCH
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, LEARNING_RATE, total_steps=epochs * steps_per_epoch)
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(train_specs))
        losses = []
        for s in range(steps_per_epoch):
            x, y = batch_of(order[s * BATCH:(s + 1) * BATCH])
            loss = F.cross_entropy(model(x), y, label_smoothing=0.05)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        click.echo(f"epoch {epoch + 1:3d}/{epochs}  loss {np.mean(losses):.3f}")

    # ---- held-out evaluation and save -----------------------------------------
    clip_eval = evaluate(model, test_specs, test_labels)
    window_eval = evaluate(model, test_specs, test_labels, window=DREAM_WINDOW)
    manifest = data / "manifest.json"
    model.meta["training"] = {
        "data": data.name, "clips": len(clips), "held_out_clips": len(test_clips),
        "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.exists() else None,
        "seed": SEED, "epochs": epochs, "crop_frames": CROP_FRAMES,
        "held_out_accuracy": round(clip_eval["accuracy"], 4),
        "held_out_per_class_recall": {k: round(v, 3) for k, v in clip_eval["recall"].items()},
        f"held_out_accuracy_{DREAM_WINDOW}_frame_windows": round(window_eval["accuracy"], 4),
        "train_seconds": round(time.time() - started, 1), "torch": torch.__version__,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    save_model(model.eval(), output)
    click.echo(json.dumps(model.meta["training"], indent=1))
    click.echo(f"held-out accuracy {clip_eval['accuracy']:.1%} on {len(test_clips)} clips; model written to {output}")


if __name__ == "__main__":
    main()
