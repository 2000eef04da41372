"""Subcommands that render: process (files, folders, clusters), demo, analyze, visualize, gallery."""

from __future__ import annotations

from pathlib import Path

import click

from dreamfx.audio_io import check_output_path, probe_audio, read_audio
from dreamfx.cli.options import EXAMPLE, collect_jobs, dream_options, progress_bar
from dreamfx.errors import DreamfxError
from dreamfx.plugin.chain import Chain
from dreamfx.plugin.presets import load_preset
from dreamfx.recipe import build_chain


@click.command()
@click.argument("src", metavar="IN", type=click.Path(path_type=Path))
@click.argument("dst", metavar="OUT", type=click.Path(path_type=Path))
@dream_options
@click.option("--overwrite", is_flag=True, help="Replace existing output files (never the input).")
@click.option("--buffer-size", default=8192, show_default=True, help="Samples per processing block.")
@click.option("--automation", type=click.Path(path_type=Path), help="Play the dream from this MIDI file (the map "
              "of dreamfx live; e.g. a live --record), applied chunk by chunk.")
@click.option("--jobs", "-j", type=click.IntRange(1), default=1, show_default=True,
              help="Render files in this many processes (this one and N - 1 workers; threads each: cores / N).")
@click.option("--cluster", metavar="ADDRESS", help="Render files on the workers of this Dask scheduler "
              "(tcp://host:8786); IN and OUT must be paths every worker sees.")
@click.option("--threads", type=click.IntRange(1), help="Torch threads per file's render [default: cores / jobs; "
              "1 with --cluster]. Renders with the same count are identical bit for bit.")
@click.option("--batch", type=click.IntRange(1, 64), default=16, show_default=True,
              help="Chunks dreamt in one batch (faster; equal to a streaming render within float rounding). "
              "1: chunk by chunk, bit for bit as streaming.")
def process(src: Path, dst: Path, preset, model, chain_spec, overwrite, buffer_size, automation, jobs, cluster,
            threads, batch, **overrides) -> None:
    """Dream IN (a file, or a folder of files) into OUT (a file, or a folder)."""
    from dreamfx.recipe import ChainRecipe
    from dreamfx.render.folder import WorkerProcesses, render_files
    from dreamfx.plugin.midi import Automation
    pairs = collect_jobs(src, dst, overwrite)
    recipe = ChainRecipe(str(preset), model, chain_spec, tuple(sorted(overrides.items())),
                         None if automation is None else str(automation.resolve()), buffer_size, batch)
    workers = min(jobs, len(pairs))
    # --jobs: the worker processes start now, while this one checks the inputs and builds its chain; forked, as
    # no torch computation has run in this process yet
    started = WorkerProcesses(recipe, workers - 1, fork=True) if cluster is None and workers > 1 else None
    try:
        total = sum(probe_audio(inp) for inp, _ in pairs)  # every input opens before any output is written
        if automation is not None:
            Automation(automation)  # a missing or bad MIDI file fails here, before any work
        chain = recipe.build()  # so does a bad preset or option; this process renders with it
    except BaseException:
        if started is not None:
            started.close()
        raise
    with progress_bar(total, "dreaming") as bar:
        summary = render_files([(inp.resolve(), out.resolve()) for inp, out in pairs], recipe, workers=jobs,
                               cluster=cluster, threads=threads, progress=bar.update, chain=chain,
                               started_workers=started)
    if len(pairs) == 1 and summary.failed:
        raise DreamfxError(summary.failed[0].error)
    click.echo(summary.line(), err=bool(summary.failed))
    if summary.failed:
        raise SystemExit(1)
    sr = summary.results[0].sample_rate
    latency = chain.latency_samples(sr)
    click.echo(f"wrote {len(pairs)} file(s) to {dst} (the chain's latency, {latency} samples = "
               f"{1000 * latency / sr:.1f} ms, compensated)")


@click.command()
@click.argument("src", metavar="IN", type=click.Path(path_type=Path), default=EXAMPLE)
@dream_options
def analyze(src: Path, preset, model, chain_spec, **overrides) -> None:
    """Measure how much of the dream survives resynthesis (retention) on IN (default: the example clip)."""
    from dreamfx.validate.metrics import measure_retention
    audio, sr = read_audio(src)
    effect = build_chain(preset, model, chain_spec, **overrides).dream_effects[0]
    report = measure_retention(effect, audio, sr)
    click.echo(f"{src}: {report.summary()}")


@click.command()
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("dreamfx-demo/example-dreamed.wav"),
              show_default=True)
@click.option("--preset", default="default", show_default=True)
def demo(output: Path, preset: str) -> None:
    """Render the bundled example clip through a preset's chain with the bundled model."""
    from dreamfx.render.folder import increments
    from dreamfx.render.file import render_file
    chain = Chain.from_preset(preset)
    output.parent.mkdir(parents=True, exist_ok=True)
    check_output_path(output, [EXAMPLE], overwrite=True)
    with progress_bar(probe_audio(EXAMPLE), f"dreaming {EXAMPLE.name}") as bar:
        sr, frames = render_file(chain, EXAMPLE, output, progress=increments(bar.update))
    click.echo(f"input:  {EXAMPLE}")
    click.echo(f"output: {output.resolve()}  (preset {preset!r}, {frames / sr:.1f} s, {sr} Hz)")


@click.command()
@click.argument("src", metavar="IN", type=click.Path(path_type=Path), default=EXAMPLE)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="The .png to write.")
@click.option("--seconds", type=float, help="Use only the first SECONDS of IN.")
@click.option("--overwrite", is_flag=True, help="Replace an existing figure.")
@dream_options
def visualize(src: Path, output: Path, seconds, overwrite, preset, model, chain_spec, **overrides) -> None:
    """Draw IN's spectrogram before and after the dream, and the objective's gain over the iterations."""
    import numpy as np
    from dreamfx.render.figures import dream_figure
    check_output_path(output, [src], overwrite, formats=(".png",))
    audio, sr = read_audio(src, seconds)
    effect = build_chain(preset, model, chain_spec, **overrides).dream_effects[0]
    engine = effect.engine(sr, audio.shape[0])
    engine.objective_trace = {}
    after = effect(audio, sr)
    traces = [t for t in engine.objective_trace.values() if len(t) == effect.iterations]
    if not traces:
        raise DreamfxError("the dream ran no iterations on this input (silent, or intensity/iterations 0)")
    values = np.array(traces, dtype=np.float64)
    objective = effect.settings.objective
    if objective.is_energy:
        gains, label = np.log(values / values[:, :1]), "ln(objective / first)"
    else:
        gains, label = values - values[:, :1], "logit - first"
    dream_figure(audio, after, sr, gains, label, output, f"{src.name}, {preset}")
    click.echo(f"wrote {output} ({len(traces)} chunks; median gain after {effect.iterations - 1} iterations "
               f"{np.median(gains[:, -1]):.3f})")


@click.command()
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path), default=Path("dreamfx-gallery"),
              show_default=True, help="Folder to write index.html, audio/ and figures/ into.")
@click.option("--input", "src", type=click.Path(path_type=Path), default=EXAMPLE, help="Clip to render "
              "(default: the bundled example).")
@click.option("--seconds", type=float, help="Use only the first SECONDS of the clip.")
@click.option("--preset", "names", multiple=True, help="Only these presets (repeatable; default: all shipped).")
def gallery(out_dir: Path, src: Path, seconds, names) -> None:
    """Render a clip through every preset into an HTML page with players and before/after spectrograms."""
    from dreamfx.render.gallery import render_gallery
    from dreamfx.plugin.presets import preset_names
    if out_dir.exists() and not out_dir.is_dir():
        raise DreamfxError(f"{out_dir} is a file: give a folder for the gallery")
    audio, sr = read_audio(src, seconds)
    presets = [load_preset(name) for name in names or preset_names()]  # every preset is checked before rendering
    with progress_bar(len(presets), "rendering presets") as bar:
        index = render_gallery(presets, audio, sr, out_dir, src.name, progress=lambda name: bar.update(1))
    click.echo(f"gallery of {len(presets)} presets: {index.resolve()}")
