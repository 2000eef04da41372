"""How smooth the dream is: the output's change under 1e-7 of input noise, stage by stage, exact vs smooth gradients.

Every figure is a perturbation SNR (dB; dreamfx.validate.metrics.perturbation_snr): the
output for the clip against the output for the clip plus Gaussian noise of
1e-7 (under one LSB of 24-bit audio); higher is smoother, and 60 dB is issue
13's bar.  Clips: the example clip and FluidSynth renders of two other genres,
5 s each (the clips of tests/test_smoothness.py).

1. The default preset's dream built up stage by stage (plain dream with the
   input phase; + consistency projection; + phase-refine; + the preset's
   chain), for each gradient rule: exact (temperatures 0, the dream before
   issue 13), smooth ReLU masks only, smooth ReLU and pooling at 0.1, and the
   shipped rule (dreamfx.nets.surrogate.DREAM_TEMPERATURES).
2. Every shipped preset's chain, exact vs shipped gradients (worst clip).
3. Backends with the default preset: TorchScript and onnxruntime against torch.
4. The cost: offline real-time factor of the default preset, exact vs smooth, side by side.

    python benchmarks/smoothness.py [--seconds 5] [--presets all|default]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np
from common import best_time, machine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # training/ (the genre clips)

from dreamfx import Chain, DreamEffect
from dreamfx.validate.metrics import perturbation_snr, snr_db
from dreamfx.plugin.presets import load_preset, preset_names
from dreamfx.nets.surrogate import DREAM_TEMPERATURES
from training.render_example import clips_of_three_genres

RULES = {"exact": (0.0, 0.0), "smooth ReLU": (0.1, 0.0), "smooth 0.1/0.1": (0.1, 0.1),
         "shipped": DREAM_TEMPERATURES}
STAGES = {"plain dream": dict(consistency=False, reconstruction="input-phase"),
          "+ consistency": dict(consistency=True, reconstruction="input-phase"),
          "+ phase-refine": dict(consistency=True, reconstruction="phase-refine")}


def with_gradients(chain, temperatures):
    """The chain, its dream stages differentiating at ``temperatures`` (ReLU, max) on the torch backend."""
    for effect in chain.dream_effects:
        effect.backend.model.smooth_gradients(*temperatures)
    return chain


def worst_snr(make_chain, audio_clips: dict[str, np.ndarray]) -> tuple[float, str]:
    """(lowest perturbation SNR over the clips, its clip); a fresh chain per clip."""
    figures = {name: perturbation_snr(lambda a: make_chain()(a, 44100), audio) for name, audio in audio_clips.items()}
    name = min(figures, key=figures.get)
    return figures[name], name


@click.command()
@click.option("--seconds", default=5.0, show_default=True)
@click.option("--presets", type=click.Choice(["all", "default"]), default="all", show_default=True)
def main(seconds: float, presets: str) -> None:
    click.echo(machine())
    with tempfile.TemporaryDirectory() as folder:
        audio_clips = clips_of_three_genres(Path(folder), seconds)
    sr = 44100
    click.echo(f"\n1. default preset, stage by stage: worst perturbation SNR over {', '.join(audio_clips)} (dB)")
    click.echo("| gradients | " + " | ".join([*STAGES, "+ chain (preset)"]) + " |")
    click.echo("|---|" + "---|" * (len(STAGES) + 1))
    preset = load_preset("default")
    for rule, temperatures in RULES.items():
        row = [worst_snr(lambda: with_gradients(Chain([DreamEffect.from_preset(preset, **over)]), temperatures), audio_clips)[0]
               for over in STAGES.values()]
        row.append(worst_snr(lambda: with_gradients(Chain.from_preset(preset), temperatures), audio_clips)[0])
        click.echo(f"| {rule} {temperatures} | " + " | ".join(f"{x:.1f}" for x in row) + " |")

    click.echo("\n2. every shipped preset's chain: worst perturbation SNR over the clips (dB)")
    click.echo("| preset | exact | shipped |")
    click.echo("|---|---|---|")
    for name in preset_names() if presets == "all" else ["default"]:
        chain_preset = load_preset(name)
        cells = []
        for temperatures in (RULES["exact"], DREAM_TEMPERATURES):
            figure, clip = worst_snr(lambda: with_gradients(Chain.from_preset(chain_preset), temperatures), audio_clips)
            cells.append(f"{figure:.1f} ({clip})")
        click.echo(f"| {name} | " + " | ".join(cells) + " |")

    click.echo("\n3. default preset, other backends against torch: SNR (dB), max difference")
    for clip, audio in audio_clips.items():
        reference = Chain.from_preset(preset, backend="torch")(audio, sr)
        for backend in ("torchscript", "onnxruntime"):
            out = Chain.from_preset(preset, backend=backend)(audio, sr)
            click.echo(f"{clip}: {backend} vs torch {snr_db(reference, out):.1f} dB, "
                       f"max difference {np.abs(out - reference).max():.1e}")

    click.echo("\n4. cost: offline real-time factor of the default preset (example clip), best of 3")
    audio = audio_clips["example"]
    times = {}
    for rule in ("exact", "shipped"):
        chain = with_gradients(Chain.from_preset(preset), RULES[rule])
        times[rule] = best_time(lambda: chain(audio, sr), 3) / (audio.shape[1] / sr)
    click.echo(f"exact {times['exact']:.3f}, smooth {times['shipped']:.3f}: smooth / exact = "
               f"{times['shipped'] / times['exact']:.2f}x  ({time.strftime('%Y-%m-%d')})")


if __name__ == "__main__":
    main()
