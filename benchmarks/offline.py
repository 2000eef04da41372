"""Offline rendering at scale (issue 15), side by side in one run:

* ``rtf``: dream stages on the example clip, chunk by chunk (as streaming runs it) vs in batches of 16
  (offline_batch), per preset and backend, with how far the two renders are apart; the whole chain too.
* ``seed``: the default preset vs the seed-style pipeline (the mel-image model, plain dream, Griffin-Lim over
  the whole file), real-time factor and retention on the same clip (needs models/mel.safetensors, see
  training/train.py).
* ``memory``: peak RSS of a fresh process rendering 1, 10 and 60 minutes in blocks (a 1-iteration dream).
* ``workers``: folders of real recordings (4 x 12 s, and N x 30 s) rendered by ``dreamfx process`` with
  --jobs 1 and 2 (the whole command: start-up included) and on a local Dask cluster of 2 workers started
  beforehand; throughput = seconds of audio per second of wall time.

    python benchmarks/offline.py [rtf seed memory workers] [--repeats 3] [--files 16]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np
from common import best_time, machine

from dreamfx import Chain, DreamEffect
from dreamfx.audio_io import read_audio, write_audio
from dreamfx.recipe import ChainRecipe
from dreamfx.render.folder import render_files, start_local_cluster
from dreamfx.validate.metrics import snr_db
from dreamfx.nets.models import example_clip_path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = example_clip_path()


def chunk_by_chunk(effect: DreamEffect, audio: np.ndarray, sr: int) -> np.ndarray:
    """The dream as streaming computes it: the engine fed one chunk at a time (no batches), latency removed."""
    engine = effect.engine(sr, audio.shape[0])
    engine.reset()
    padded = np.concatenate([audio, np.zeros((audio.shape[0], engine.latency), np.float32)], axis=1)
    step = engine.chunk_samples
    out = np.concatenate([engine.process(padded[:, i:i + step]) for i in range(0, padded.shape[1], step)], axis=1)
    return out[:, engine.latency:engine.latency + audio.shape[1]]


def rtf(repeats: int) -> None:
    audio, sr = read_audio(EXAMPLE)
    seconds = audio.shape[1] / sr
    print(f"\n## rtf: example clip {seconds:.1f} s, dream stage alone, best of {repeats}; batched = offline_batch 16")
    print("| preset | backend | chunk by chunk RTF | batched RTF | speed-up | batched vs chunk by chunk: SNR, max "
          "difference | whole chain RTF (batched) |")
    print("|---|---|---|---|---|---|---|")
    for preset in ("default", "metal-hallucination", "drum-ghosts"):
        for backend in ("torch", "onnxruntime", "torchscript"):
            effect = DreamEffect.from_preset(preset, backend=backend)
            chain = Chain.from_preset(preset, backend=backend)
            for fx in chain.dream_effects:
                fx.offline_batch = 16
            effect(audio[:, :sr], sr), chain(audio[:, :sr], sr)  # builds graphs, warms caches
            one = best_time(lambda: chunk_by_chunk(effect, audio, sr), repeats)
            effect.offline_batch = 16
            batched = best_time(lambda: effect(audio, sr), repeats)
            whole = best_time(lambda: chain(audio, sr), repeats)
            reference, out = chunk_by_chunk(effect, audio, sr), effect(audio, sr)
            print(f"| {preset} | {backend} | {one / seconds:.3f} | {batched / seconds:.3f} | {one / batched:.2f}x | "
                  f"{snr_db(reference, out):.0f} dB, {np.abs(reference - out).max():.1e} | {whole / seconds:.3f} |")


def seed() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from fidelity import MODELS, measure
    if not MODELS["mel (seed)"].is_file():
        print("\n## seed: skipped, train models/mel.safetensors first (training/train.py)")
        return
    audio, sr = read_audio(EXAMPLE)
    clips = [(audio, sr)]
    ours = measure(MODELS["mel-in-the-loop"], "consistent", "phase-refine", clips)
    theirs = measure(MODELS["mel (seed)"], "plain", "griffin-lim", clips)
    print("\n## seed: example clip, the default preset's dream settings on each (retention measurement included)")
    print("| pipeline | RTF | retention | gain heard |")
    print("|---|---|---|---|")
    for label, r in (("default preset (mel-in-the-loop, consistent, phase-refine)", ours),
                     ("seed-style (mel image, plain dream, Griffin-Lim)", theirs)):
        print(f"| {label} | {r['rtf']:.3f} | {r['retention']:.3f} | {r['gain_audio']:.1f} |")
    print(f"seed-style / default time: {theirs['rtf'] / ours['rtf']:.2f}x")


PEAK_RSS = """
import resource, sys
from pathlib import Path
from dreamfx import Chain, DreamEffect
from dreamfx.render.file import render_file
render_file(Chain([DreamEffect(intensity=0.5, iterations=1)]), Path(sys.argv[1]), Path(sys.argv[2]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def memory(work: Path) -> None:
    audio, sr = read_audio(EXAMPLE)
    print("\n## memory: peak RSS of a fresh process rendering in blocks (1-iteration dream, stereo 44.1 kHz FLAC)")
    print("| audio | peak RSS | wall | RTF |")
    print("|---|---|---|---|")
    for minutes in (1, 10, 60):
        source = work / f"{minutes}min.flac"
        from pedalboard.io import AudioFile
        with AudioFile(str(source), "w", sr, 2, bit_depth=24) as f:
            for _ in range(minutes * 6):  # 10 s at a time
                f.write(audio)
        started = time.perf_counter()
        run = subprocess.run([sys.executable, "-c", PEAK_RSS, str(source), str(work / "out.flac")],
                             capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
        print(f"| {minutes} min | {int(run.stdout.split()[-1])} MB | {wall:.1f} s | {wall / (60 * minutes):.3f} |")
        source.unlink()


def real_recordings(seconds: float, count: int) -> list[tuple[np.ndarray, int]]:
    """``count`` excerpts of ``seconds`` from real recordings (Debian's asc-music, GPL; the example clip if it
    is not installed), cut one after another from each piece."""
    pieces = sorted(Path("/usr/share/games/asc/music").glob("*.mp3")) or [EXAMPLE]
    excerpts = []
    for i in range(count):
        audio, sr = read_audio(pieces[i % len(pieces)])
        start = (10 + (i // len(pieces)) * seconds) * sr
        excerpts.append((audio[:, int(start):int(start + seconds * sr)], sr))
    return excerpts


def workers(work: Path, files: int, repeats: int) -> None:
    """``dreamfx process FOLDER OUT --jobs 1`` and ``--jobs 2`` on a folder of short files and one of longer
    files, each the whole command's wall time (start-up included, as a user waits for it), the two run
    alternately ``repeats`` times (this VM's speed drifts by 20 % within minutes: the ratio is of medians of
    neighbouring runs); and the same folder through render_files on a local Dask cluster started beforehand."""
    print("\n## workers: default preset; wall time of the whole `dreamfx process` command (start-up included), "
          f"median of {repeats} alternating runs; render_files on a Dask cluster started beforehand")
    print("| folder | how | wall (median) | all runs | audio s per wall s | vs --jobs 1 |")
    print("|---|---|---|---|---|---|")
    with start_local_cluster(2) as cluster:
        for label, seconds, count in (("4 x 12 s", 12.0, 4), (f"{files} x 30 s", 30.0, files)):
            folder = work / label.replace(" ", "")
            folder.mkdir()
            for i, (audio, sr) in enumerate(real_recordings(seconds, count)):
                write_audio(folder / f"clip{i:02d}.wav", audio, sr)
            walls: dict[int, list[float]] = {1: [], 2: []}
            for repeat in range(repeats):
                for jobs in (1, 2):
                    started = time.perf_counter()
                    subprocess.run([sys.executable, "-m", "dreamfx.cli", "process", str(folder),
                                    str(work / f"{folder.name}-jobs{jobs}-{repeat}"), "--jobs", str(jobs)],
                                   check=True, capture_output=True)
                    walls[jobs].append(time.perf_counter() - started)
            total, baseline = seconds * count, float(np.median(walls[1]))
            for jobs in (1, 2):
                wall = float(np.median(walls[jobs]))
                print(f"| {label} | dreamfx process --jobs {jobs} | {wall:.1f} s | "
                      f"{', '.join(f'{w:.1f}' for w in walls[jobs])} | {total / wall:.2f} | {baseline / wall:.2f}x |",
                      flush=True)
            jobs = [(p, work / f"{folder.name}-dask" / p.name) for p in sorted(folder.glob("*.wav"))]
            started = time.perf_counter()
            summary = render_files(jobs, ChainRecipe(batch=16), cluster=cluster.scheduler_address)
            wall = time.perf_counter() - started
            assert not summary.failed, summary.line()
            print(f"| {label} | Dask cluster, 2 workers (started before) | {wall:.1f} s | | {total / wall:.2f} | "
                  f"{baseline / wall:.2f}x |", flush=True)


@click.command()
@click.argument("parts", nargs=-1, type=click.Choice(["rtf", "seed", "memory", "workers"]))
@click.option("--repeats", default=3, show_default=True)
@click.option("--files", default=8, show_default=True, help="Files in the long folder of the workers part.")
def main(parts, repeats: int, files: int) -> None:
    parts = parts or ("rtf", "seed", "memory", "workers")
    print(f"{time.strftime('%Y-%m-%d')} · {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        for part in parts:
            if part == "rtf":
                rtf(repeats)
            elif part == "seed":
                seed()
            elif part == "memory":
                memory(Path(tmp))
            else:
                workers(Path(tmp), files, repeats)


if __name__ == "__main__":
    main()
