"""The live student (issue 24, ``tags-live``, training/student.py): agreement with its teachers, cost per dream
iteration beside the compact genre model, live latency and load, transfer of the live presets' dreams to networks
that did not dream, offline RTF.

    python benchmarks/student.py [--recordings 10] [--soak 30] [--repeats 3]

* agreement: on the test split (hyperrogue-music, asc-music: never trained on), the student's 100 tags on spans of
  24 frames (0.28 s, the live window) against the teachers' on the 2.1 s windows holding them; and the rank of
  each solo instrument's own tag (eight FluidSynth instruments, seeds no training used).
* cost: one dream iteration on the live window (2 + 22 frames at 48 kHz), the student and the compact genre
  model side by side, torch and onnxruntime, best of ``--repeats``.
* live: ``benchmarks/live.py`` (a JACK dummy server, a real duplex stream) for each live preset, ``--soak``
  seconds: latency, iterations achieved, worker load, late blocks, xruns.
* transfer: each live preset's whole chain, offline, on ``--recordings`` test excerpts of 8 s; every network that
  did not dream and knows the tag judges before and after (the issue's hit: >= 1.5x and +0.05).
* offline RTF of the default preset and of the live presets, on the example clip; and what the default preset's
  dream trades for speed (:data:`DEFAULT_TRADES`): RTF, retention, smoothness (SNR under 1e-7 input noise).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import torch
from common import best_time, machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dreamfx import Chain, DreamEffect  # noqa: E402
from dreamfx.audio_io import read_audio  # noqa: E402
from dreamfx.dream.ascent import Objective, first_step_inputs  # noqa: E402
from dreamfx.dsp.spectral import LOG_EPS, analyze_signal  # noqa: E402
from dreamfx.engine.backends import open_backend  # noqa: E402
from dreamfx.export.graphs import step_graph  # noqa: E402
from dreamfx.nets.models import example_clip_path, load_model  # noqa: E402
from dreamfx.validate.metrics import measure_retention, perturbation_snr  # noqa: E402
from dreamfx.testing.transfer import judges_of, kept, load_judges  # noqa: E402
from training.student import solo_ranks, test_split_agreement  # noqa: E402
from transfer import excerpts, rises  # noqa: E402

LIVE_PRESETS = {"live-jazz": "msd:jazz", "live-piano": "mtt:piano", "live-metal": "msd:metal"}
JUDGES = ["judge-deep", "msd-vgg", "mtt-vgg", "default", "tags-robust", "tags-plain", "tags-live"]
RATE = 48000
PARTS = ("agreement", "cost", "live", "transfer", "rtf")
# The default preset's dream stage, moved to the student and lightened toward the RTF 0.1: overrides of
# the preset, and the chunks dreamt in one batch (possible only without the consistency projection).
DEFAULT_TRADES = {
    "default (genre model, shipped)": ({}, 1),
    "default, onnxruntime": ({"backend": "onnxruntime"}, 1),
    "default, 2 iterations, onnxruntime": ({"iterations": 2, "backend": "onnxruntime"}, 1),
    "on tags-live": ({"model": "tags-live"}, 1),
    "on tags-live, 4 iterations": ({"model": "tags-live", "iterations": 4}, 1),
    "on tags-live, 2 iterations": ({"model": "tags-live", "iterations": 2}, 1),
    "on tags-live, 2 iterations, onnxruntime": ({"model": "tags-live", "iterations": 2, "backend": "onnxruntime"}, 1),
    "on tags-live, no consistency, batches of 16": ({"model": "tags-live", "consistency": False}, 16),
    "on tags-live, 2 iterations, no consistency, batches of 16": (
        {"model": "tags-live", "iterations": 2, "consistency": False}, 16),
}


def iteration_seconds(model: str, backend: str, objective: Objective, repeats: int, iterations: int = 200) -> float:
    """Seconds per dream iteration of ``model`` on the live window (2 new + 22 context frames) at 48 kHz."""
    audio, sr = read_audio(example_clip_path())
    dreamer = open_backend(model, backend, "cpu", exporter=step_graph)
    stft = dreamer.prepare(RATE)
    mono = torch.from_numpy(np.interp(np.arange(0, audio.shape[1], sr / RATE), np.arange(audio.shape[1]),
                                      audio.mean(axis=0)).astype(np.float32))
    magnitude = analyze_signal(mono, stft).abs()[None, :, 100:124]
    inputs = first_step_inputs(torch.log(magnitude[..., :22] + LOG_EPS), magnitude[..., 22:],
                               objective.weights(dreamer.spec), step=0.2, max_gain_db=12.0, smooth_bins=2,
                               smooth_frames=1, preserve_level=True)
    step = dreamer.step_function(objective)
    step(inputs)
    return best_time(lambda: [step(inputs) for _ in range(iterations)], repeats) / iterations


def default_trades(audio: np.ndarray, sr: int, repeats: int) -> None:
    """Each of DEFAULT_TRADES on ``audio`` (channels, samples) at ``sr``: the dream stage's RTF, its retention, and
    its smoothness (the output's SNR under 1e-7 of input noise, on the first 5 s; the issue asks >= 0.95 and
    >= 60 dB); what is traded: the dreaming network's objective (its layer's activation) on the rendered audio
    over the dry input's, and how much of the song is kept (chroma / onset correlations, benchmarks/transfer.py's)."""
    print("| default preset's dream | RTF | retention | smoothness | objective after / before | kept chroma / onsets |"
          "\n|---|---|---|---|---|---|")
    for name, (overrides, batch) in DEFAULT_TRADES.items():
        def effect() -> DreamEffect:
            made = DreamEffect.from_preset("default", **overrides)
            made.offline_batch = batch
            return made
        dream = effect()
        seconds = best_time(lambda: (dream.reset(), dream(audio, sr)), repeats)
        report = measure_retention(effect(), audio, sr)
        smooth = perturbation_snr(lambda a: effect()(a, sr), audio[:, :5 * sr])
        chroma, onsets = kept(audio, report.output, sr)
        print(f"| {name} | {seconds / (audio.shape[1] / sr):.3f} | {report.retention:.3f} | {smooth:.1f} dB | "
              f"{report.objective_audio / report.objective_dry:.2f}x | {chroma:.2f} / {onsets:.2f} |")


def agreement() -> None:
    student = load_model("tags-live")
    print("\n## agreement with the teachers (test split, 24-frame spans)")
    print(test_split_agreement(student))
    ranks = solo_ranks(student)
    print(f"solo instruments, rank of their own tag: {ranks}; in the top 5: {sum(r <= 5 for r in ranks.values())} "
          f"of {len(ranks)}")


def cost(repeats: int) -> None:
    print("\n## cost per iteration, live window at 48 kHz, 1 thread")
    for backend in ("torch", "onnxruntime"):
        compact = iteration_seconds("default", backend, Objective("class", target="jazz"), repeats)
        mine = iteration_seconds("tags-live", backend, Objective("class", target="msd:jazz"), repeats)
        print(f"{backend:12s} compact genre model {1000 * compact:.2f} ms, student {1000 * mine:.2f} ms "
              f"({mine / compact:.2f}x)")


def live(soak: float) -> None:
    print("\n## live (benchmarks/live.py, JACK dummy server, 48 kHz, 256-frame blocks)")
    for preset in (*LIVE_PRESETS, "live-tight"):
        done = subprocess.run([sys.executable, str(Path(__file__).parent / "live.py"), "--preset", preset,
                               "--seconds", str(soak)], capture_output=True, text=True)
        lines = done.stdout.strip().splitlines()[1:] if done.returncode == 0 else [done.stderr[-500:]]
        print("\n".join(f"[{preset}] {line}" for line in lines))


def transfer(count: int) -> None:
    print(f"\n## transfer: the live presets' chains offline on {count} test excerpts of 8 s")
    clips = excerpts("test", count, 8.0)
    judges = load_judges(JUDGES)
    for preset, tag in LIVE_PRESETS.items():
        chain = Chain.from_preset(preset)
        held_out = judges_of(tag, {"tags-live"}, judges)
        hits, gains = 0, {j.name: [] for j in held_out}
        for _, audio in clips:
            out = chain(audio, 44100)
            before = [j.probability(audio, 44100, tag) for j in held_out]
            after = [j.probability(out, 44100, tag) for j in held_out]
            hits += rises(float(np.mean(before)), float(np.mean(after)))
            for j, b, a in zip(held_out, before, after):
                gains[j.name].append((b, a))
        per_judge = ", ".join(f"{name} {np.mean([a for _, a in v]) / max(np.mean([b for b, _ in v]), 1e-6):.2f}x"
                              for name, v in gains.items())
        print(f"{preset} ({tag}): held-out mean hits {hits} of {len(clips)}; after / before: {per_judge}")


def rtf(repeats: int) -> None:
    print("\n## offline RTF on the example clip (10 s, 44.1 kHz stereo)")
    audio, sr = read_audio(example_clip_path())
    for preset in ("default", *LIVE_PRESETS):
        chain = Chain.from_preset(preset)
        seconds = best_time(lambda: chain(audio, sr), repeats)
        print(f"{preset:12s} RTF {seconds / (audio.shape[1] / sr):.3f}")
    print("\n## the default preset's dream moved to the student and lightened (example clip, 1 thread)")
    default_trades(audio, sr, repeats)


@click.command()
@click.option("--parts", default=",".join(PARTS), show_default=True, help="Comma-separated parts to run.")
@click.option("--recordings", "count", default=10, show_default=True)
@click.option("--soak", default=30.0, show_default=True, help="Seconds of each live run.")
@click.option("--repeats", default=3, show_default=True)
def main(parts: str, count: int, soak: float, repeats: int) -> None:
    torch.set_num_threads(1)
    print(machine())
    chosen = parts.split(",")
    if set(chosen) - set(PARTS):
        raise click.BadParameter(f"unknown part in {parts!r}: use some of {', '.join(PARTS)}", param_hint="--parts")
    if "agreement" in chosen:
        agreement()
    if "cost" in chosen:
        cost(repeats)
    if "live" in chosen:
        live(soak)
    if "transfer" in chosen:
        transfer(count)
    if "rtf" in chosen:
        rtf(repeats)
    print(time.strftime("measured %Y-%m-%d"))


if __name__ == "__main__":
    main()
