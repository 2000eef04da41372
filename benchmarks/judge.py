"""Is a judge fit to judge?  Measured without any dream, at the rate dreams are judged (44.1 kHz).

benchmarks/transfer.py and benchmarks/guide.py judge 8 s excerpts of real recordings at 44.1 kHz, in 3 s patches.
A judge (e.g. judge-deep, trained on 16 kHz windows) that hears at that rate what it never heard in training
(the band above 8 kHz) hears every processed sound as something else.  For each model, on excerpts of the test
split (never trained on):

* against its teachers (msd-vgg, mtt-vgg, which hear up to 8 kHz at any rate): the correlation of its 100 tag
  probabilities with theirs (across tags, per excerpt, mean), and its total probability over the tags relative to
  theirs (1: as much tagged as they hear);
* under sound changes that change no tag (Reverb, 6 dB quieter, an 8 kHz low-pass, MP3 at V4, Chorus, noise
  40 dB under the peak): how much its profile stays (correlation with its own profile of the dry excerpt) and its
  total probability relative to the dry excerpt's.  The teachers are measured alike, as the reference.

    python benchmarks/judge.py tests/data/judge_deep.safetensors /tmp/old-judge.safetensors [--recordings 10]
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np
import pedalboard
from common import machine

sys.path.insert(0, str(Path(__file__).resolve().parent))

from transfer import SAMPLE_RATE, excerpts  # noqa: E402

from dreamfx.testing.transfer import Judge, load_judges  # noqa: E402

CHANGES = {
    "Reverb": pedalboard.Pedalboard([pedalboard.Reverb(room_size=0.45, wet_level=0.2, dry_level=0.85)]),
    "-6 dB": pedalboard.Pedalboard([pedalboard.Gain(-6.0)]),
    "low-pass 8 kHz": pedalboard.Pedalboard([pedalboard.LowpassFilter(8000.0)]),
    "MP3 V4": pedalboard.Pedalboard([pedalboard.MP3Compressor(4.0)]),
    "Chorus": pedalboard.Pedalboard([pedalboard.Chorus()]),
}
NOISE_DB = -40.0  # noise under the excerpt's peak


def changed(audio: np.ndarray, change: str, rng: np.random.Generator) -> np.ndarray:
    """``audio`` (channels, samples) through one of the changes that change no tag."""
    if change == "noise":
        scale = np.abs(audio).max() * 10 ** (NOISE_DB / 20)
        return audio + (rng.standard_normal(audio.shape) * scale).astype(np.float32)
    return CHANGES[change](audio, SAMPLE_RATE)


def teachers_profile(teachers: list[Judge], audio: np.ndarray) -> np.ndarray:
    """Both teachers' tag probabilities (100,), MSD's then MTT's, as the students' classes are ordered."""
    return np.concatenate([t.profile(audio, SAMPLE_RATE) for t in teachers])


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


@click.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--recordings", "count", default=10, show_default=True)
@click.option("--seconds", default=8.0, show_default=True)
def main(models: tuple[str, ...], count: int, seconds: float) -> None:
    """How fit MODELS (files or shipped names, taggers of the students' 100 tags) are to judge."""
    print(f"# judge: {machine()}; {count} excerpts of {seconds:g} s from the test split at {SAMPLE_RATE} Hz")
    clips = [audio for _, audio in excerpts("test", count, seconds)]
    rng = np.random.default_rng(0)
    versions = {"dry": clips, **{c: [changed(a, c, rng) for a in clips] for c in [*CHANGES, "noise"]}}
    teachers = load_judges(["msd-vgg", "mtt-vgg"])
    reference = {name: [teachers_profile(teachers, a) for a in audio] for name, audio in versions.items()}
    rows = [("teachers (msd-vgg + mtt-vgg)", reference)]
    rows += [(judge.name, {name: [judge.profile(a, SAMPLE_RATE) for a in audio] for name, audio in versions.items()})
             for judge in load_judges(list(models))]
    changes = [c for c in versions if c != "dry"]
    print("\n| model | vs teachers: correlation / total | " +
          " | ".join(f"{c}: kept / total" for c in changes) + " |")
    print("|---|---|" + "---|" * len(changes))
    for name, profiles in rows:
        dry = profiles["dry"]
        versus = np.mean([correlation(p, t) for p, t in zip(dry, reference["dry"])])
        total = np.mean([p.sum() / t.sum() for p, t in zip(dry, reference["dry"])])
        cells = [f"{np.mean([correlation(p, d) for p, d in zip(profiles[c], dry)]):.3f} / "
                 f"{np.mean([p.sum() / d.sum() for p, d in zip(profiles[c], dry)]):.2f}" for c in changes]
        print(f"| {name} | {versus:.3f} / {total:.2f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
