"""Dream fidelity: frontends x dreams x reconstructions on held-out clips, in one report.

For each classifier (the shipped mel-in-the-loop model and those trained by
training/train.py into models/), the dream with and without the consistency
projection, and each way of rebuilding audio, on held-out clips of DATA with
the same dream settings otherwise (the default preset's dream):

* accuracy of the classifier on held-out 32-frame windows (and whole clips);
* retention: objective gain measured on the re-analysed output audio / gain on
  the dreamed spectrogram (dreamfx.validate.metrics), and that gain on the audio itself;
* spectral convergence of the output against the magnitude the dream asked for;
* run time (real-time factor of the render, measure included).

Reconstructions: input phase (the engine's default), input phase + Griffin-Lim
refinement inside each chunk ("phase-refine", streaming), and the seed's
Griffin-Lim over the whole file (offline).  The mel frontend with Griffin-Lim
is the seed-style baseline: dream on the mel image, invert mel -> linear ->
Griffin-Lim.  Writes benchmarks/reports/fidelity.md and its figures.

    python benchmarks/fidelity.py data/genres [--clips-per-genre 1] [--seconds 5]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np
from common import machine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # training/ is not installed with the package

from dreamfx.audio_io import read_audio
from dreamfx.plugin.effect import DreamEffect
from dreamfx.render.figures import before_after_figure
from dreamfx.validate.metrics import measure_retention
from dreamfx.nets.models import default_model_path, load_model
from dreamfx.plugin.presets import load_preset
from dreamfx.engine.reconstruction import griffin_lim
from training.dataset import scan, split
from training.evaluate import DREAM_WINDOW, HOLDOUT_EVERY, evaluate_model

ROOT = Path(__file__).resolve().parent.parent
MODELS = {  # label -> model file
    "mel-in-the-loop": default_model_path(),
    "mel-in-the-loop, deep": ROOT / "models" / "mel_in_the_loop-deep.safetensors",
    "mel (seed)": ROOT / "models" / "mel.safetensors",
    "linear": ROOT / "models" / "linear.safetensors",
}
RECONSTRUCTIONS = ("input-phase", "phase-refine", "griffin-lim")
DREAMS = ("plain", "consistent")  # without / with the consistency projection after every iteration
SHIPPED = ("mel-in-the-loop", "consistent", "phase-refine")  # what the default preset does


def dream_settings() -> dict:
    """The default preset's dream parameters, without its model and backend."""
    params = dict(load_preset("default").dream)
    for key in ("model", "backend", "device"):
        params.pop(key, None)
    return params


def measure(model_path: Path, dream: str, reconstruction: str, clips: list[tuple[np.ndarray, int]]) -> dict:
    settings = dict(dream_settings(), consistency=dream == "consistent",
                    reconstruction="phase-refine" if reconstruction == "phase-refine" else "input-phase")
    effect = DreamEffect(model_path, **settings)
    rebuild = griffin_lim if reconstruction == "griffin-lim" else None
    gains_audio = gains_spectral = convergence = seconds = audio_seconds = 0.0
    for audio, sr in clips:
        started = time.perf_counter()
        report = measure_retention(effect, audio, sr, rebuild)
        seconds += time.perf_counter() - started
        audio_seconds += audio.shape[1] / sr
        gains_audio += report.gain_audio / len(clips)
        gains_spectral += report.gain_spectral / len(clips)
        convergence += report.spectral_convergence / len(clips)
    return {"retention": gains_audio / gains_spectral, "gain_audio": gains_audio, "convergence": convergence,
            "rtf": seconds / audio_seconds}


def bar_chart(results: dict, path: Path) -> None:
    """Retention and spectral convergence per frontend (groups) and dream x reconstruction (bars)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = list(results)
    variants = [(d, r) for d in DREAMS for r in RECONSTRUCTIONS]
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained")
    width = 0.8 / len(variants)
    for i, (dream, reconstruction) in enumerate(variants):
        x = np.arange(len(labels)) + (i - (len(variants) - 1) / 2) * width
        for ax, key in zip(axes, ("retention", "convergence")):
            values = [results[m].get((dream, reconstruction), {}).get(key, np.nan) for m in labels]
            ax.bar(x, values, width, label=f"{dream}, {reconstruction}", hatch="//" if dream == "consistent" else None)
    for ax, title in zip(axes, ("retention (higher is better)", "spectral convergence (lower is better)")):
        ax.set_xticks(np.arange(len(labels)), labels, rotation=15)
        ax.set_title(title, fontsize=10)
    axes[0].axhline(0.9, color="gray", linestyle=":", linewidth=1)
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=len(variants), fontsize=8)
    figure.savefig(path, dpi=90)
    plt.close(figure)


@click.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--clips-per-genre", default=1, show_default=True, help="Held-out clips per genre to dream.")
@click.option("--seconds", default=5.0, show_default=True, help="Length of each clip used.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              default=ROOT / "benchmarks" / "reports", show_default=True)
def main(data: Path, clips_per_genre: int, seconds: float, output: Path) -> None:
    missing = [str(p) for p in MODELS.values() if not p.is_file()]
    if missing:
        raise click.ClickException(f"train the comparison models first (see training/train.py): {missing}")
    output.mkdir(parents=True, exist_ok=True)
    clips, classes = scan(data)
    _, held_out = split(clips, HOLDOUT_EVERY)
    chosen = [c for label in range(len(classes)) for c in [c for c in held_out if c.label == label][:clips_per_genre]]
    audio_clips = []
    for clip in chosen:
        audio, sr = read_audio(clip.path)
        audio_clips.append((audio[:, :int(seconds * sr)], sr))

    results, accuracy = {}, {}
    for label, path in MODELS.items():
        model = load_model(path)
        scores = evaluate_model(model, data)
        accuracy[label] = (scores["clips"]["accuracy"], scores[f"windows_{DREAM_WINDOW}"]["accuracy"])
        # the projection needs a model that dreams linear magnitudes; on a mel-image model the engine skips it
        dreams = DREAMS if model.frontend.dream_domain == "linear" else ("plain",)
        results[label] = {(d, r): measure(path, d, r, audio_clips) for d in dreams for r in RECONSTRUCTIONS}
        audio, sr = audio_clips[0]
        before_after_figure(audio, DreamEffect(path, **dream_settings())(audio, sr), sr,
                            output / f"fidelity-{path.stem}.png", f"{label}, the default preset's dream")
        click.echo(f"{label}: done", err=True)
    bar_chart(results, output / "fidelity.png")

    d = dream_settings()
    lines = ["# Dream fidelity: frontends x dreams x reconstructions", "",
             f"{time.strftime('%Y-%m-%d')} · {machine()} · `python benchmarks/fidelity.py {data}` · "
             f"{len(audio_clips)} held-out clips ({clips_per_genre} per genre) × {seconds:g} s · dream: the default "
             f"preset's ({d.get('layer', 'conv3')} energy, intensity {d['intensity']}, {d['iterations']} iterations, "
             f"step {d['step']}, bound {d['max_gain_db']} dB) on each model, without (plain) and with the "
             "consistency projection", "",
             "Gain heard: the objective's gain measured on the re-analysed output audio, summed over a clip's chunks "
             "(mean over clips): retention alone would reward a weaker dream.", "",
             "| frontend | held-out accuracy (clips / 32-frame windows) | dream | reconstruction | retention | "
             "gain heard | spectral convergence | RTF |", "|---|---|---|---|---|---|---|---|"]
    for label in results:
        clip_acc, window_acc = accuracy[label]
        for (dream, r), m in results[label].items():
            note = " **(seed-style baseline)**" if (label, dream, r) == ("mel (seed)", "plain", "griffin-lim") else \
                " **(default preset)**" if (label, dream, r) == SHIPPED else ""
            lines.append(f"| {label} | {clip_acc:.1%} / {window_acc:.1%} | {dream} | {r}{note} | "
                         f"{m['retention']:.3f} | {m['gain_audio']:.1f} | {m['convergence']:.3f} | {m['rtf']:.2f} |")
    lines.append("\nThe consistency projection needs a model that dreams linear magnitudes: the mel frontend has "
                 "plain rows only.")
    lines += ["", "![retention and spectral convergence](fidelity.png)", ""]
    lines += [f"![{label}](fidelity-{path.stem}.png)" for label, path in MODELS.items()]
    report = "\n".join(lines) + "\n"
    (output / "fidelity.md").write_text(report)
    click.echo(report)


if __name__ == "__main__":
    main()
