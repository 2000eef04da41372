"""Render the synthetic genre data set: generated MIDI -> FluidSynth -> WAV.

Writes a GTZAN-layout folder ``<root>/<genre>/<genre>.<00000>.wav`` plus
``<root>/manifest.json`` (seed, tempo and duration of every clip).  The same
seed gives the same MIDI, and the same FluidSynth + soundfont give the same
audio.

    python -m training.render_dataset data/genres --clips 60 --seconds 6
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import numpy as np
from pedalboard.io import AudioFile

from dreamfx.audio_io import write_audio
from training.genres import STYLES, TRAINING_INSTRUMENTS, compose, compose_solo

DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
PEAK = 10 ** (-3 / 20)  # normalise every clip to -3 dBFS peak
SOUNDFONT_LICENCE = "FluidR3_GM soundfont (fluid-soundfont-gm, MIT)"


def find_fluidsynth(soundfont: Path) -> str:
    """Path of the fluidsynth binary; raise a one-line error naming the fix."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise click.ClickException("fluidsynth is not installed: run 'apt-get install -y fluidsynth fluid-soundfont-gm'")
    if not soundfont.is_file():
        raise click.ClickException(f"soundfont {soundfont} not found: run 'apt-get install -y fluid-soundfont-gm' or pass --soundfont")
    return exe


def render_midi(midi, out_wav: Path, seconds: float, sample_rate: int, soundfont: Path, fluidsynth: str) -> None:
    """Render a mido.MidiFile with FluidSynth, trim to ``seconds``, normalise to -3 dBFS, write ``out_wav``."""
    with tempfile.TemporaryDirectory() as tmp:
        mid_path, raw_path = Path(tmp) / "clip.mid", Path(tmp) / "raw.wav"
        midi.save(mid_path)
        subprocess.run([fluidsynth, "-ni", "-q", "-g", "0.5", "-r", str(sample_rate), "-F", str(raw_path),
                        str(soundfont), str(mid_path)], check=True, capture_output=True)
        with AudioFile(str(raw_path)) as f:
            audio = f.read(int(seconds * sample_rate))
        if audio.shape[1] < int(seconds * sample_rate):
            raise RuntimeError(f"FluidSynth rendered only {audio.shape[1] / sample_rate:.2f} s for {out_wav}")
        peak = float(np.max(np.abs(audio)))
        if peak > 0:
            audio = audio * (PEAK / peak)
        write_audio(out_wav, audio.astype(np.float32), sample_rate, bit_depth=16)


def plan(clips: int, seconds: float, seed: int) -> list[tuple[Path, object, float]]:
    """(relative path, MIDI, BPM) of every clip: ``clips`` per genre, composed from ``seed``."""
    jobs = []
    for g, style in enumerate(STYLES):
        for i in range(clips):
            midi, bpm = compose(style, np.random.default_rng([seed, g, i]), seconds)
            jobs.append((Path(style.name) / f"{style.name}.{i:05d}.wav", midi, bpm))
    return jobs


def render_jobs(root: Path, jobs, seconds: float, sample_rate: int, soundfont: Path, n_workers: int,
                progress=None) -> None:
    """Render planned clips under ``root`` with ``n_workers`` FluidSynth processes."""
    fluidsynth = find_fluidsynth(soundfont)
    for rel, _, _ in jobs:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)

    def work(job):
        rel, midi, _ = job
        render_midi(midi, root / rel, seconds, sample_rate, soundfont, fluidsynth)

    with ThreadPoolExecutor(n_workers) as pool:
        for _ in pool.map(work, jobs):
            if progress is not None:
                progress(1)


def render_clips(folder: Path, sample_rate: int, seed: int, seconds: float, genre_clips: int,
                 solo_clips: int) -> list[dict]:
    """Render ``genre_clips`` clips of each synthetic genre and ``solo_clips`` solos of each of
    :data:`~training.genres.TRAINING_INSTRUMENTS` (``seconds`` long, composed from ``seed``) into ``folder`` as
    WAV at ``sample_rate``; their records (name, kind "genre" or "solo", path, licence, package)."""
    fluidsynth = find_fluidsynth(DEFAULT_SOUNDFONT)
    clips = []
    for rel, midi, _ in plan(genre_clips, seconds, seed):
        clips.append({"name": f"{rel.parent.name}.{int(rel.stem.rsplit('.', 1)[1]):02d}", "midi": midi,
                      "kind": "genre"})
    for j, (name, instrument) in enumerate(TRAINING_INSTRUMENTS.items()):
        for i in range(solo_clips):
            midi = compose_solo(instrument, np.random.default_rng([seed, 1000 + j, i]), seconds)
            clips.append({"name": f"solo {name}.{i:02d}", "midi": midi, "kind": "solo"})
    folder.mkdir(parents=True, exist_ok=True)
    with click.progressbar(clips, label="FluidSynth renders") as bar:
        for clip in bar:
            path = folder / (clip["name"].replace(" ", "_") + ".wav")
            render_midi(clip.pop("midi"), path, seconds, sample_rate, DEFAULT_SOUNDFONT, fluidsynth)
            clip.update(path=str(path), licence=SOUNDFONT_LICENCE, package="fluidsynth")
    return clips


@click.command()
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
@click.option("--clips", default=60, show_default=True, help="Clips per genre.")
@click.option("--seconds", default=6.0, show_default=True, help="Length of each clip.")
@click.option("--sample-rate", default=22050, show_default=True)
@click.option("--seed", default=2026, show_default=True)
@click.option("--soundfont", type=click.Path(path_type=Path), default=DEFAULT_SOUNDFONT, show_default=True)
@click.option("--jobs", "n_workers", default=2, show_default=True, help="FluidSynth processes run at once.")
def main(root: Path, clips: int, seconds: float, sample_rate: int, seed: int, soundfont: Path, n_workers: int) -> None:
    """Render CLIPS clips per genre into ROOT (GTZAN layout)."""
    jobs = plan(clips, seconds, seed)
    with click.progressbar(length=len(jobs), label="rendering clips") as bar:
        render_jobs(root, jobs, seconds, sample_rate, soundfont, n_workers, bar.update)
    manifest = {"seed": seed, "seconds": seconds, "sample_rate": sample_rate, "soundfont": soundfont.name,
                "clips": [{"path": str(rel), "bpm": round(bpm, 2)} for rel, _, bpm in jobs]}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    click.echo(f"wrote {len(jobs)} clips to {root}")


if __name__ == "__main__":
    main()
