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
from training.genres import STYLES, compose

DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
PEAK = 10 ** (-3 / 20)  # normalise every clip to -3 dBFS peak


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


@click.command()
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
@click.option("--clips", default=60, show_default=True, help="Clips per genre.")
@click.option("--seconds", default=6.0, show_default=True, help="Length of each clip.")
@click.option("--sample-rate", default=22050, show_default=True)
@click.option("--seed", default=2026, show_default=True)
@click.option("--soundfont", type=click.Path(path_type=Path), default=DEFAULT_SOUNDFONT, show_default=True)
@click.option("--jobs", default=2, show_default=True, help="FluidSynth processes run at once.")
def main(root: Path, clips: int, seconds: float, sample_rate: int, seed: int, soundfont: Path, jobs: int) -> None:
    """Render CLIPS clips per genre into ROOT (GTZAN layout)."""
    fluidsynth = find_fluidsynth(soundfont)
    jobs_list = []
    for g, style in enumerate(STYLES):
        (root / style.name).mkdir(parents=True, exist_ok=True)
        for i in range(clips):
            rng = np.random.default_rng([seed, g, i])
            midi, bpm = compose(style, rng, seconds)
            jobs_list.append((root / style.name / f"{style.name}.{i:05d}.wav", midi, bpm))

    def work(job):
        path, midi, _ = job
        render_midi(midi, path, seconds, sample_rate, soundfont, fluidsynth)

    with ThreadPoolExecutor(jobs) as pool, click.progressbar(pool.map(work, jobs_list), length=len(jobs_list),
                                                              label="rendering clips") as bar:
        for _ in bar:
            pass
    manifest = {"seed": seed, "seconds": seconds, "sample_rate": sample_rate, "soundfont": soundfont.name,
                "clips": [{"path": str(p.relative_to(root)), "bpm": round(bpm, 2)} for p, _, bpm in jobs_list]}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    click.echo(f"wrote {len(jobs_list)} clips to {root}")


if __name__ == "__main__":
    main()
