"""The ``dreamfx`` command line: process files and folders, inspect models, measure dreams.

Errors are one line on stderr (``dreamfx: error: ...``) with exit status 2;
no traceback, no output file left behind.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from dreamfx.audio_io import READ_FORMATS, check_output_path, probe_audio, read_audio
from dreamfx.backends import BACKENDS
from dreamfx.errors import DreamfxError
from dreamfx.midi import PARAMETERS as MIDI_PARAMETERS
from dreamfx.models import SHIPPED_MODELS, ModelSpec, example_clip_path, model_path
from dreamfx.presets import NATIVE_PLUGINS, Preset, load_preset

EXPORT_SUFFIXES = {"onnx": (".onnx",), "torchscript": (".pt", ".ts")}
EXAMPLE = example_clip_path()


def dream_options(f):
    """Options that override the preset's dream parameters (None = keep the preset's)."""
    options = [
        click.option("--preset", default="default", show_default=True, help="Preset name in presets/ or a .toml path."),
        click.option("--model", help="A shipped model (default, msd-vgg, mtt-vgg, tags-plain, tags-robust) or a model "
                     "file (.safetensors, .onnx, .pt); default: the preset's."),
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
        click.option("--seed", type=int, help="Seed of the jitter."),
        click.option("--jitter", type=int, help="Random time roll per iteration, frames."),
        click.option("--octaves", type=int, help="Coarse-to-fine stages of the dream (1..4)."),
        click.option("--memory", type=float, help="Weight of the previous chunk's change in each chunk's (temporal smoothing)."),
        click.option("--consistency/--no-consistency", default=None, help="Project the change after every "
                     "iteration onto what overlap-add can deliver (the dream survives resynthesis)."),
        click.option("--band", "band_hz", type=float, nargs=2, help="Confine the dream to LOW HIGH Hz."),
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


def build_chain(preset: str | Preset, model, chain_spec: str | None, **overrides):
    """The Chain for a preset (a name or path, or one already loaded, left unchanged) with CLI overrides applied."""
    p = preset if isinstance(preset, Preset) else load_preset(preset)
    if model is not None:
        overrides["model"] = model if model in SHIPPED_MODELS else str(Path(model).resolve())
    for single, blend in (("target", "targets"), ("layer", "layers")):
        value = overrides.get(single)
        if value is not None and "=" in value:
            overrides[single], overrides[blend] = None, _parse_blend(value, single)
    for table in ("ensemble", "transforms"):
        if isinstance(overrides.get(table), str):
            overrides[table] = _parse_blend(overrides[table], table)
    if chain_spec:
        stages = [s.strip() for s in chain_spec.split(",") if s.strip()]
        for s in stages:
            if s != "dream" and s not in NATIVE_PLUGINS:
                raise DreamfxError(f"--chain: unknown stage {s!r}; use 'dream' or one of {', '.join(NATIVE_PLUGINS)}")
        if stages.count("dream") != 1:
            raise DreamfxError("--chain must name the 'dream' stage exactly once, e.g. --chain 'Reverb,dream'")
        p = dataclasses.replace(p, chain=[{"plugin": s} for s in stages])
    return p.build_chain(**overrides)


def _parse_blend(text: str, option: str) -> dict[str, float]:
    """'jazz=0.6,metal=0.4' -> {'jazz': 0.6, 'metal': 0.4} (``option`` names the CLI option in errors)."""
    blend = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        try:
            blend[name.strip()] = float(weight)
        except ValueError:
            raise DreamfxError(f"--{option} {text!r}: write name=value pairs, e.g. jazz=0.6,metal=0.4 (classes), "
                               "conv2=0.5,conv4=0.5 (layers), tags-robust=1 (ensemble), samples=4,shift_bins=2 "
                               "(transforms)") from None
    return blend


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dreamfx")
def cli() -> None:
    """dreamfx: a DeepDream audio effect."""


@cli.command()
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
    from dreamfx.batch_render import ChainRecipe, WorkerProcesses, render_files
    from dreamfx.midi import Automation
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


@cli.command()
@click.argument("model", required=False, default="default")
@click.option("--json", "as_json", is_flag=True, help="Print the whole metadata as JSON.")
def info(model: str, as_json: bool) -> None:
    """Describe MODEL: a shipped model (default, msd-vgg, mtt-vgg, tags-plain, tags-robust) or a safetensors /
    exported file."""
    from dreamfx.backends import read_model_metadata
    path = model_path(model)
    meta = read_model_metadata(path)
    if as_json:
        click.echo(json.dumps(meta, indent=2))
        return
    stft, window = meta["stft"], ModelSpec(meta).default_window
    click.echo(f"model: {model} ({path})")
    training = meta.get("training", {})
    if "clips" in training:  # trained by training/train.py on a GTZAN-layout folder
        click.echo(f"trained on: {training['clips']} clips of the folder {training['data']!r} (held-out accuracy "
                   f"{training.get('held_out_accuracy', float('nan')):.1%})")
    else:
        click.echo(f"trained on: {training.get('data', 'see its training record (--json)')}")
    click.echo(f"input: {stft['n_fft']}-point STFT, hop {stft['hop']} at {stft['sample_rate']} Hz (scaled to the "
               f"audio's rate), frontend {meta['frontend']['kind']}")
    click.echo(f"layers: {', '.join(meta['layers'])}; dream window: {window[0]} new + {window[1]} context frames")
    click.echo(f"{len(meta['classes'])} {'tags' if meta.get('task') == 'tagging' else 'classes'}: "
               f"{', '.join(meta['classes'])}")
    if "export" in meta:
        record = meta["export"]
        click.echo(f"export: {record['format']} {record['what']} for {record['sample_rate']} Hz"
                   + (f", objectives on {record['graph_layer']}" if "graph_layer" in record else "")
                   + (", gradient temperatures ReLU {:g}, max {:g}".format(*record["gradient_temperatures"])
                      if "gradient_temperatures" in record else ""))
    if "licence" in meta:
        click.echo(f"licence: {meta['licence'].splitlines()[0]} (full notice: dreamfx info {model} --json)")


@cli.command("export")
@click.argument("model", required=False, default="default")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="File to write.")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), default="onnx", show_default=True)
@click.option("--what", type=click.Choice(["dream-step", "classifier"]), default="dream-step", show_default=True)
@click.option("--layer", default="conv3", show_default=True, help="Dream step: layer whose energy is dreamed.")
@click.option("--channel", type=int, help="Dream step: the default channel of --layer.")
@click.option("--target", help="Dream step: a class objective (the graph serves every class) with this default.")
@click.option("--sample-rate", type=int, default=44100, show_default=True, help="The graph's sample rate.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def export_command(model, output, fmt, what, layer, channel, target, sample_rate, overwrite) -> None:
    """Export MODEL (a shipped model: default, msd-vgg, mtt-vgg, tags-plain, tags-robust; or a safetensors file)
    to ONNX or TorchScript, metadata inside."""
    from dreamfx.dream import Objective
    from dreamfx.export import export_model
    from dreamfx.models import load_model
    path = model_path(model)
    check_output_path(output, [path], overwrite, formats=EXPORT_SUFFIXES[fmt])
    if target is not None:
        objective = Objective("class", target=target)
    else:
        objective = Objective("layer" if channel is None else "channel", layer, channel or 0)
    meta = export_model(load_model(path), output, fmt=fmt, what=what, objective=objective,
                        sample_rate=sample_rate)
    record = meta["export"]
    serves = f", objectives on {record['graph_layer']}" if what == "dream-step" else ""
    click.echo(f"wrote {output} ({fmt} {what}, {sample_rate} Hz, {record['n_bins']} bins{serves})")


@cli.command()
@click.argument("src", metavar="IN", type=click.Path(path_type=Path), default=EXAMPLE)
@dream_options
def analyze(src: Path, preset, model, chain_spec, **overrides) -> None:
    """Measure how much of the dream survives resynthesis (retention) on IN (default: the example clip)."""
    from dreamfx.metrics import measure_retention
    audio, sr = read_audio(src)
    effect = build_chain(preset, model, chain_spec, **overrides).dream_effects[0]
    report = measure_retention(effect, audio, sr)
    click.echo(f"{src}: {report.summary()}")


@cli.command()
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("dreamfx-demo/example-dreamed.wav"),
              show_default=True)
@click.option("--preset", default="default", show_default=True)
def demo(output: Path, preset: str) -> None:
    """Render the bundled example clip through a preset's chain with the bundled model."""
    from dreamfx.batch_render import increments
    from dreamfx.file_render import render_file
    chain = load_preset(preset).build_chain()
    output.parent.mkdir(parents=True, exist_ok=True)
    check_output_path(output, [EXAMPLE], overwrite=True)
    with progress_bar(probe_audio(EXAMPLE), f"dreaming {EXAMPLE.name}") as bar:
        sr, frames = render_file(chain, EXAMPLE, output, progress=increments(bar.update))
    click.echo(f"input:  {EXAMPLE}")
    click.echo(f"output: {output.resolve()}  (preset {preset!r}, {frames / sr:.1f} s, {sr} Hz)")


@cli.command()
@dream_options
@click.option("--input", "input_device", help="Input device (name part or number; default: the system's).")
@click.option("--output", "output_device", help="Output device (name part or number).")
@click.option("--samplerate", type=int, default=48000, show_default=True)
@click.option("--blocksize", type=int, default=256, show_default=True, help="Frames per audio callback.")
@click.option("--channels", type=int, default=2, show_default=True)
@click.option("--midi-port", help="Play the dream from this MIDI input port (name part or number).")
@click.option("--midi-virtual", help="Create a virtual MIDI input port with this name instead.")
@click.option("--record", type=click.Path(path_type=Path), help="Save the MIDI played, timed to the chunks it "
              "changed, to this .mid file (replay it with process --automation).")
@click.option("--duration", type=float, help="Stop after this many seconds (default: run until Ctrl-C).")
@click.option("--soak", type=float, metavar="SECONDS", help="Run this many seconds, then print xruns, late blocks, "
              "iterations achieved, worker load and latency.")
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True, help="Compute threads of "
              "the dream (torch, onnxruntime); one runs at the worker's real-time priority, more do not.")
@click.option("--headroom", type=float, metavar="MS", help="Time the worker has for each chunk, part of the "
              "latency (default: measured before the stream starts).")
@click.option("--learn", type=click.Choice(list(MIDI_PARAMETERS)), help="Bind the next MIDI controller moved to "
              "this parameter, and save the preset with that MIDI map when the session ends.")
@click.option("--save-preset", type=click.Path(path_type=Path), help="Where --learn saves the preset (default: "
              "the preset file itself; needed for a shipped preset).")
def live(preset, model, chain_spec, input_device, output_device, samplerate, blocksize, channels, midi_port,
         midi_virtual, record, duration, soak, threads, headroom, learn, save_preset, **overrides) -> None:
    """Process live audio input through a preset's chain (full duplex), optionally played with MIDI.

    MIDI program change n switches to the preset's midi.programs[n] (default: the shipped presets in
    `dreamfx presets list` order), crossfaded over one chunk.
    """
    import torch
    from dreamfx.live import LiveProcessor, run_live, soak_summary
    from dreamfx.midi import MidiControl, close_midi_port, open_midi_input
    from dreamfx.presets import PRESET_DIR, preset_names, preset_path
    if not 16 <= blocksize <= 8192:
        raise DreamfxError(f"--blocksize must be in 16..8192, got {blocksize}")
    if soak is not None and duration is not None:
        raise DreamfxError("--soak SECONDS runs for that long: drop --duration")
    if headroom is not None and not 0 <= headroom <= 1000:
        raise DreamfxError(f"--headroom must be in 0..1000 ms, got {headroom}")
    midi = midi_port is not None or midi_virtual is not None
    if (record is not None or learn is not None) and not midi:
        raise DreamfxError(f"{'--record' if record else '--learn'} needs MIDI input: add --midi-port or --midi-virtual")
    if record is not None:
        check_output_path(record, [], formats=(".mid",))
    source = load_preset(preset)
    if learn is not None:
        save_preset = save_preset or preset_path(preset)
        if save_preset.resolve().parent == PRESET_DIR.resolve():
            raise DreamfxError(f"--learn would change the shipped preset {source.name!r}: add --save-preset my.toml")
        check_output_path(save_preset, [], overwrite=True, formats=(".toml",))
    torch.set_num_threads(threads)  # before the chains are built: onnxruntime sessions take this count too
    chain = build_chain(source, model, chain_spec, **overrides)

    def chain_factory(name: str):
        switched = load_preset(name)
        return build_chain(switched, model, None, backend=overrides["backend"], device=overrides["device"]), \
            switched.midi

    control = MidiControl(chain.dream_effects[0], source.midi_map()) if midi else None
    programs = (source.midi_map().programs or tuple(preset_names())) if midi else ()  # reached by program change
    processor = LiveProcessor(chain, samplerate, channels, blocksize, control=control, chain_factory=chain_factory,
                              programs=programs, preset_name=source.name,
                              headroom=None if headroom is None else round(headroom * samplerate / 1000))
    if processor.unswitchable:
        click.echo("not switchable by program change: " + "; ".join(
            f"{name} ({why})" for name, why in processor.unswitchable.items()), err=True)
    midi_in = None
    if control is not None:
        control.recording = record is not None
        if learn is not None:
            control.learn(learn)
            click.echo(f"MIDI learn: move the controller for {learn}", err=True)
        midi_in = open_midi_input(control, midi_port, midi_virtual)
        click.echo(f"MIDI input: {midi_virtual or midi_port}", err=True)
    interactive = sys.stderr.isatty()
    report = (lambda line: click.echo("\r" + line, nl=False, err=True)) if interactive else \
        (lambda line: click.echo(line, err=True))
    try:
        stats = run_live(processor, input_device=input_device, output_device=output_device, blocksize=blocksize,
                         duration=soak if soak is not None else duration, report=report,
                         report_every=10.0 if soak is not None else 0.5)
    except KeyboardInterrupt:
        stats = processor.stats
    finally:
        if midi_in is not None:
            close_midi_port(midi_in)
    if record is not None:
        control.save_recording(record, samplerate)
        click.echo(f"recorded {len(control.recorded)} MIDI messages to {record}")
    if learn is not None:
        _save_learned(source, control, save_preset)
    e = processor.engine.stats if processor.engine else None
    click.echo(("\n" if interactive else "") + f"stopped: {stats.chunks} chunks, xruns {stats.xruns}, late blocks "
               f"{stats.late_blocks}, dropped frames {stats.dropped_frames}, preset switches {stats.switches}"
               + (f", reduced chunks {e.reduced_chunks}, dry chunks {e.deadline_dry_chunks}" if e else ""))
    if soak is not None:
        click.echo(soak_summary(processor, soak))


def _save_learned(source, control, path: Path) -> None:
    """Save ``source`` with the controllers learned in this session bound in its MIDI map."""
    from dreamfx.presets import save_preset
    if not control.learned:
        click.echo("MIDI learn: no controller was moved; nothing saved")
        return
    midi_map = source.midi_map()
    for number, name in control.learned:
        midi_map.bind(number, name)
    source.midi = midi_map
    save_preset(source, path)
    bindings = ", ".join(f"CC{number} -> {name}" for number, name in control.learned)
    click.echo(f"MIDI learn: {bindings}; saved to {path}")


@cli.group()
def presets() -> None:
    """List, show, check and save presets."""


@presets.command("list")
def presets_list() -> None:
    """The shipped presets, with their descriptions."""
    from dreamfx.presets import PRESET_DIR, preset_names
    names = preset_names()
    width = max(map(len, names), default=0)
    for name in names:
        click.echo(f"{name:<{width}}  {load_preset(name).description}")
    click.echo(f"({len(names)} presets in {PRESET_DIR})")


@presets.command("show")
@click.argument("name")
def presets_show(name: str) -> None:
    """Print a preset (a name or a .toml path) as its TOML, after checking it."""
    from dreamfx.presets import preset_path, validate_preset
    validate_preset(name)
    path = preset_path(name)
    click.echo(f"# {path}")
    click.echo(path.read_text(encoding="utf-8"), nl=False)


@presets.command("validate")
@click.argument("files", nargs=-1, required=True)
def presets_validate(files) -> None:
    """Check preset files completely (structure, values, plugins, model); one line each."""
    from dreamfx.presets import validate_preset
    failed = 0
    for file in files:
        try:
            preset = validate_preset(file)
            click.echo(f"ok: {file} ({preset.name})")
        except DreamfxError as exc:
            failed += 1
            click.echo(f"invalid: {exc}")
    if failed:
        raise DreamfxError(f"{failed} of {len(files)} preset(s) invalid")


@presets.command("save")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="The .toml file to write.")
@click.option("--name", help="Name of the new preset (default: the file's stem).")
@click.option("--description", default="", help="One line describing the sound.")
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
@dream_options
def presets_save(output: Path, name, description, overwrite, preset, model, chain_spec, **overrides) -> None:
    """Save a preset with the dream options given here applied (e.g. --preset default --intensity 0.4)."""
    from dreamfx.presets import Preset, save_preset
    check_output_path(output, [], overwrite, formats=(".toml",))
    source = load_preset(preset)
    chain = build_chain(source, model, chain_spec, **overrides)
    saved = Preset.from_chain(chain, name or output.stem, description or source.description, source.midi)
    save_preset(saved, output)
    click.echo(f"wrote {output}")


@cli.command()
@click.argument("src", metavar="IN", type=click.Path(path_type=Path), default=EXAMPLE)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="The .png to write.")
@click.option("--seconds", type=float, help="Use only the first SECONDS of IN.")
@click.option("--overwrite", is_flag=True, help="Replace an existing figure.")
@dream_options
def visualize(src: Path, output: Path, seconds, overwrite, preset, model, chain_spec, **overrides) -> None:
    """Draw IN's spectrogram before and after the dream, and the objective's gain over the iterations."""
    import numpy as np
    from dreamfx.figures import dream_figure
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


@cli.command()
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path), default=Path("dreamfx-gallery"),
              show_default=True, help="Folder to write index.html, audio/ and figures/ into.")
@click.option("--input", "src", type=click.Path(path_type=Path), default=EXAMPLE, help="Clip to render "
              "(default: the bundled example).")
@click.option("--seconds", type=float, help="Use only the first SECONDS of the clip.")
@click.option("--preset", "names", multiple=True, help="Only these presets (repeatable; default: all shipped).")
def gallery(out_dir: Path, src: Path, seconds, names) -> None:
    """Render a clip through every preset into an HTML page with players and before/after spectrograms."""
    from dreamfx.gallery import render_gallery
    from dreamfx.presets import preset_names
    if out_dir.exists() and not out_dir.is_dir():
        raise DreamfxError(f"{out_dir} is a file: give a folder for the gallery")
    audio, sr = read_audio(src, seconds)
    presets = [load_preset(name) for name in names or preset_names()]  # every preset is checked before rendering
    with progress_bar(len(presets), "rendering presets") as bar:
        index = render_gallery(presets, audio, sr, out_dir, src.name, progress=lambda name: bar.update(1))
    click.echo(f"gallery of {len(presets)} presets: {index.resolve()}")


@cli.command("validate")
@click.argument("targets", nargs=-1, metavar="[TARGET]...")
@click.option("--strictness", type=click.IntRange(1, 10), default=5, show_default=True,
              help="1: the quick checks; 5: all checks, pluginval's default; 10: every block size at every rate, "
              "1000 values per parameter.")
@click.option("--seconds", type=click.FloatRange(0, min_open=True), help="Length of the test signals [default: "
              "two chunks past the latency].")
@click.option("--jobs", "-j", type=click.IntRange(1), default=1, show_default=True,
              help="Targets validated at once, each in its own process.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON document.")
@click.option("--known-failure", "known", multiple=True, metavar="TARGET:CHECK", help="A check known to fail "
              "(repeatable): it must fail, and does not fail the run; if it passes, the run fails (update the list).")
def validate_command(targets, strictness, seconds, jobs, as_json, known) -> None:
    """Hammer presets, models and exports with a plugin validator's battery: block sizes and sample rates,
    NaN bursts, latency, parameter fuzz and automation, state round trips, damaged files.

    TARGET: a preset (name or .toml), a model (default, msd-vgg, mtt-vgg, tags-plain, tags-robust or a
    .safetensors file) or an export (.onnx, .pt); model:NAME where a preset has the same name.  None: every shipped preset and model.
    One line per check; exit status 1 when any check fails.
    """
    from dreamfx.validate import shipped_targets, summary, validate
    outcomes = validate(list(targets) or shipped_targets(), strictness, seconds, jobs,
                        (lambda outcome: None) if as_json else (lambda outcome: click.echo(outcome.line())))
    if as_json:
        click.echo(json.dumps({"strictness": strictness, "passed": sum(o.passed for o in outcomes),
                               "failed": sum(not o.passed for o in outcomes),
                               "checks": [dataclasses.asdict(o) for o in outcomes]}, indent=1))
    else:
        click.echo(summary(outcomes))
    failed = {f"{o.subject}:{o.check}" for o in outcomes if not o.passed}
    ran = {f"{o.subject}:{o.check}" for o in outcomes}
    unexpected, fixed = failed - set(known), (set(known) & ran) - failed
    if known:
        click.echo(f"known failures: {len(set(known) & failed)} still failing; unexpected failures: "
                   f"{', '.join(sorted(unexpected)) or 'none'}; known failures now passing: "
                   f"{', '.join(sorted(fixed)) or 'none'}", err=as_json)
    if unexpected or fixed:
        sys.exit(1)


@cli.command()
def devices() -> None:
    """List audio devices and MIDI input ports."""
    from dreamfx.live import device_listing
    from dreamfx.midi import port_listing
    click.echo("audio devices:")
    click.echo(device_listing())
    click.echo("MIDI input ports:")
    click.echo(port_listing())


def main() -> None:
    """Entry point: run the CLI, turning DreamfxError into a one-line message and exit status 2."""
    try:
        cli(standalone_mode=False)
    except DreamfxError as exc:
        click.echo(f"dreamfx: error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("dreamfx: interrupted; no partial output was kept", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
