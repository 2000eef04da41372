"""Render the bundled example clip (a genre piece not in the training set), stereo 44.1 kHz FLAC.

    python -m training.render_example dreamfx/assets/example.flac
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from dreamfx.audio_io import read_audio
from dreamfx.nets.models import example_clip_path
from training.genres import GENRES, STYLES, compose
from training.render_dataset import DEFAULT_SOUNDFONT, find_fluidsynth, render_midi

EXAMPLE_SEED = 7  # differs from the data set's seed, so the example is never a training clip


@click.command()
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--genre", type=click.Choice(GENRES), default="jazz", show_default=True)
@click.option("--seconds", default=10.0, show_default=True)
@click.option("--sample-rate", default=44100, show_default=True)
@click.option("--soundfont", type=click.Path(path_type=Path), default=DEFAULT_SOUNDFONT, show_default=True)
def main(output: Path, genre: str, seconds: float, sample_rate: int, soundfont: Path) -> None:
    """Render one GENRE clip of SECONDS to OUTPUT."""
    bpm = render_genre_clip(genre, output, seconds, sample_rate, soundfont)
    click.echo(f"wrote {seconds:.0f} s of {genre} at {bpm:.0f} BPM to {output}")


def render_genre_clip(genre: str, output: Path, seconds: float, sample_rate: int = 44100,
                      soundfont: Path = DEFAULT_SOUNDFONT) -> float:
    """Render a clip of ``genre`` composed from the example's seed (never a training clip) to ``output``
    (WAV, -3 dBFS peak); returns its tempo, BPM."""
    style = STYLES[GENRES.index(genre)]
    midi, bpm = compose(style, np.random.default_rng([EXAMPLE_SEED, GENRES.index(genre)]), seconds)
    render_midi(midi, output, seconds, sample_rate, soundfont, find_fluidsynth(soundfont))
    return bpm


def clips_of_three_genres(folder: Path, seconds: float) -> dict[str, np.ndarray]:
    """name -> (2, samples) float32 at 44.1 kHz: the example clip (jazz) and renders of classical and metal
    (written to ``folder``), ``seconds`` each: the clips of tests/test_smoothness.py and benchmarks/smoothness.py."""
    clips = {"example": read_audio(example_clip_path(), seconds)[0]}
    for genre in ("classical", "metal"):
        render_genre_clip(genre, Path(folder) / f"{genre}.wav", seconds)
        clips[genre] = read_audio(Path(folder) / f"{genre}.wav")[0]
    return clips


if __name__ == "__main__":
    main()
