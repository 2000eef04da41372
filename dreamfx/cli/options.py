"""What the subcommands share: the dream options, progress bars, the jobs of a file or folder render."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dreamfx.audio_io import READ_FORMATS, check_output_path
from dreamfx.dream.guide import MATCHES
from dreamfx.engine.backends import BACKENDS
from dreamfx.errors import DreamfxError
from dreamfx.nets.models import example_clip_path

EXPORT_SUFFIXES = {"onnx": (".onnx",), "torchscript": (".pt", ".ts")}
EXAMPLE = example_clip_path()


def dream_options(f=None, *, preset: str = "default"):
    """Options that override the preset's dream parameters (None = keep the preset's); ``preset`` is --preset's
    default (``@dream_options`` or ``@dream_options(preset="live-jazz")``)."""
    if f is None:
        return lambda g: dream_options(g, preset=preset)
    options = [
        click.option("--preset", default=preset, show_default=True, help="Preset name in presets/ or a .toml path."),
        click.option("--model", help="A shipped model (default, msd-vgg, mtt-vgg, tags-plain, tags-robust, tags-live) "
                     "or a model file (.safetensors, .onnx, .pt); default: the preset's."),
        click.option("--intensity", type=float, help="Dream depth 0..1 (0 = bypass)."),
        click.option("--iterations", type=int, help="Dream iterations per chunk."),
        click.option("--step", type=float, help="Step size per iteration."),
        click.option("--mix", type=float, help="Wet/dry mix 0..1."),
        click.option("--layer", help="Layer whose energy is dreamed (conv1..conv4; conv5 on the taggers), or a "
                     "weighted blend of layers: "
                     "conv2=0.5,conv4=0.5 (torch backend)."),
        click.option("--channel", type=int, help="Dream one channel of --layer."),
        click.option("--target", help="Dream toward this class or tag (e.g. jazz, 'heavy metal') instead of a layer, "
                     "or a weighted blend: jazz=0.6,metal=0.4."),
        click.option("--guide", help="Dream toward this recording (an audio file) instead of a layer or tag: "
                     "what the network hears in it grows in the input (torch backend)."),
        click.option("--match", type=click.Choice(MATCHES), help="How a guided dream compares the input with its "
                     "guide: per-channel energies, Gram matrices, DeepDream's dot product, or the tag profile."),
        click.option("--seed", type=int, help="Seed of the jitter."),
        click.option("--jitter", type=int, help="Random time roll per iteration, frames."),
        click.option("--octaves", type=int, help="Coarse-to-fine stages of the dream (1..4)."),
        click.option("--memory", type=float, help="Weight of the previous chunk's change in each chunk's (temporal smoothing)."),
        click.option("--consistency/--no-consistency", default=None, help="Project the change after every "
                     "iteration onto what overlap-add can deliver (the dream survives resynthesis)."),
        click.option("--band", "band_hz", type=float, nargs=2, help="Confine the dream to LOW HIGH Hz."),
        click.option("--canvas", "canvas_db", help="Give the dream faint noise this many dB under the input to "
                     "paint on (-60..-10, e.g. -30), or 'off'."),
        click.option("--canvas-slope", "canvas_slope", type=float, help="The canvas's colour: power 1 / f ** "
                     "SLOPE, 0 white, 1 pink, 2 brown."),
        click.option("--ensemble", help="Networks that dream with the model toward the same tag, with weights "
                     "(the model's is 1): tags-robust=1.0 (torch backend)."),
        click.option("--transforms", help="Random transforms each iteration's gradient is averaged over: "
                     "samples=4,shift_bins=3,gain_db=3,tilt_db=1.5,noise_db=2 (torch backend)."),
        click.option("--backend", type=click.Choice(BACKENDS), help="Where the dream runs (default: the "
                     "preset's; auto = torch for safetensors models, else the exported file's kind)."),
        click.option("--device", help="auto, cpu or cuda."),
        click.option("--chain", "chain_spec", help="Replace the preset's chain: comma-separated stages, e.g. "
                     "'Reverb,dream,Compressor' (native plugins with default settings)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


class _Quiet:
    """Stands in for a progress bar when stderr is not a terminal (logs, pipes, CI)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int) -> None:
        pass


def progress_bar(length: int, label: str):
    """A click progress bar on an interactive stderr, else a silent stand-in."""
    if sys.stderr.isatty():
        return click.progressbar(length=length, label=label, file=sys.stderr)
    return _Quiet()


def collect_jobs(src: Path, dst: Path, overwrite: bool) -> list[tuple[Path, Path]]:
    """(input, output) pairs for a file or a folder tree; validated before any work."""
    if src.is_dir():
        if dst.exists() and not dst.is_dir():
            raise DreamfxError(f"{src} is a folder, so OUT must be a folder too, but {dst} is a file")
        if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
            raise DreamfxError(f"output folder {dst} must not be the input folder or inside it")
        files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in READ_FORMATS)
        if not files:
            raise DreamfxError(f"no audio files ({' '.join(READ_FORMATS)}) found in {src}")
        jobs = [(f, dst / f.relative_to(src)) for f in files]  # folders are made when their first file is written
    else:
        if not src.exists():
            raise DreamfxError(f"input file {src} not found")
        jobs = [(src, dst)]
    for inp, out in jobs:
        check_output_path(out, [inp], overwrite, parent_must_exist=not src.is_dir())
    return jobs
