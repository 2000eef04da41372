"""Evaluate genre classifiers on the held-out clips of a GTZAN-layout folder.

For each model: accuracy on whole clips and on the 32-frame windows the dream
engine feeds the model, per-class precision and recall, and a confusion-matrix
PNG (window level: whole clips are too easy on the bundled set).

    python -m training.evaluate data/genres models/*.safetensors -o reports/evaluation
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import torch

from dreamfx.nets.models import DreamNet, load_model
from training.dataset import logmag_spectrogram, scan, split

DREAM_WINDOW = 32          # frames the engine feeds the model (context + chunk)
HOLDOUT_EVERY = 5          # the split train.py uses: every 5th clip of each genre held out


def predictions(model: DreamNet, specs: list[torch.Tensor], labels: np.ndarray,
                window: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, true) class indices on whole clips (``window`` None) or on non-overlapping windows."""
    model.eval()
    preds, truth = [], []
    with torch.no_grad():
        for spec, label in zip(specs, labels):
            if window is None:
                batch = spec[None]
            else:
                n = spec.shape[1] // window
                batch = spec[:, :n * window].reshape(spec.shape[0], n, window).permute(1, 0, 2)
            p = model(batch).argmax(dim=1)
            preds.extend(p.tolist())
            truth.extend([int(label)] * len(p))
    return np.array(preds), np.array(truth)


def scores(preds: np.ndarray, truth: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Accuracy, per-class precision and recall, and the confusion matrix (rows: true, columns: predicted)."""
    n = len(classes)
    confusion = np.zeros((n, n), dtype=int)
    np.add.at(confusion, (truth, preds), 1)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    diagonal = np.diag(confusion)
    return {
        "accuracy": float(diagonal.sum() / max(confusion.sum(), 1)), "n": int(confusion.sum()),
        "precision": {c: float(diagonal[i] / predicted[i]) if predicted[i] else 0.0 for i, c in enumerate(classes)},
        "recall": {c: float(diagonal[i] / actual[i]) if actual[i] else 0.0 for i, c in enumerate(classes)},
        "confusion": confusion.tolist(),
    }


def confusion_figure(report: dict, classes: tuple[str, ...], title: str, path: Path) -> None:
    """The confusion matrix as a PNG: counts in the cells, rows normalised for the colours."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    counts = np.array(report["confusion"])
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, ax = plt.subplots(figsize=(6, 5.2), constrained_layout=True)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(counts):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=8, color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: {report['accuracy']:.1%} of {report['n']} windows", fontsize=10)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def evaluate_model(model: DreamNet, data: Path) -> dict:
    """Clip and window scores of ``model`` on the held-out clips of ``data``."""
    clips, _ = scan(data)
    _, test_clips = split(clips, HOLDOUT_EVERY)
    specs = [logmag_spectrogram(c.path, model.stft_reference) for c in test_clips]
    labels = np.array([c.label for c in test_clips])
    return {"clips": scores(*predictions(model, specs, labels), model.class_names),
            f"windows_{DREAM_WINDOW}": scores(*predictions(model, specs, labels, DREAM_WINDOW), model.class_names)}


@click.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for <model>.json and <model>-confusion.png.")
def main(data: Path, models: tuple[Path, ...], output: Path) -> None:
    """Score each model file on the held-out clips of DATA."""
    output.mkdir(parents=True, exist_ok=True)
    for path in models:
        model = load_model(path)
        report = evaluate_model(model, data)
        report["model"] = {"file": path.name, "frontend": model.meta["frontend"]["kind"],
                           "variant": model.meta.get("variant", "compact")}
        (output / f"{path.stem}.json").write_text(json.dumps(report, indent=1))
        windows = report[f"windows_{DREAM_WINDOW}"]
        confusion_figure(windows, model.class_names, path.stem, output / f"{path.stem}-confusion.png")
        click.echo(f"{path.stem}: clips {report['clips']['accuracy']:.1%}, {DREAM_WINDOW}-frame windows "
                   f"{windows['accuracy']:.1%} (macro recall {np.mean(list(windows['recall'].values())):.1%})")


if __name__ == "__main__":
    main()
