"""Offline speed of the default preset vs pedalboard's native Reverb, on the bundled example clip.

Prints, from one run: the dream stage's real-time factor (processing time / audio
duration), the same file's time through pedalboard.Reverb, their ratio, the
whole default chain's time, and the reported latency.

    python benchmarks/realtime.py [--repeats 3]
"""

from __future__ import annotations

import click
import pedalboard
from common import best_time, machine

from dreamfx import Chain, DreamEffect
from dreamfx.audio_io import read_audio
from dreamfx.nets.models import example_clip_path

EXAMPLE = example_clip_path()


@click.command()
@click.option("--repeats", default=3, show_default=True, help="Best of this many runs.")
def main(repeats: int) -> None:
    audio, sr = read_audio(EXAMPLE)
    seconds = audio.shape[1] / sr
    dream = DreamEffect.from_preset("default")
    chain = Chain.from_preset("default")
    reverb = pedalboard.Reverb()
    t_dream = best_time(lambda: dream(audio, sr), repeats)
    t_chain = best_time(lambda: chain(audio, sr), repeats)
    t_reverb = best_time(lambda: reverb(audio, sr), repeats)
    latency = dream.latency_samples(sr)
    print(f"{machine()}; dream device {dream.engine(sr, audio.shape[0]).device}")
    print(f"clip: {EXAMPLE.name}, {seconds:.1f} s, {audio.shape[0]} ch, {sr} Hz; preset 'default' "
          f"({dream.iterations} iterations/chunk, layer {dream.layer})")
    print(f"dream stage   {t_dream:8.3f} s   real-time factor {t_dream / seconds:.3f}")
    print(f"default chain {t_chain:8.3f} s   real-time factor {t_chain / seconds:.3f}")
    print(f"pedalboard.Reverb {t_reverb:8.4f} s   real-time factor {t_reverb / seconds:.5f}")
    print(f"ratio dream / Reverb: {t_dream / t_reverb:.0f}x")
    print(f"reported latency: {latency} samples = {1000 * latency / sr:.1f} ms at {sr} Hz")


if __name__ == "__main__":
    main()
