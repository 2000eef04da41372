"""Subcommands about models: info, export."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dreamfx.audio_io import check_output_path
from dreamfx.cli.options import EXPORT_SUFFIXES
from dreamfx.nets.models import ModelSpec, model_path


@click.command()
@click.argument("model", required=False, default="default")
@click.option("--json", "as_json", is_flag=True, help="Print the whole metadata as JSON.")
def info(model: str, as_json: bool) -> None:
    """Describe MODEL: a shipped model (default, msd-vgg, mtt-vgg, tags-plain, tags-robust, tags-live) or a
    safetensors / exported file."""
    from dreamfx.engine.backends import read_model_metadata
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
    sources = training.get("recordings") or training.get("sources") or []
    packages = dict.fromkeys((s["package"], s["licence"]) for s in sources if s.get("kind") == "real")
    if packages:
        click.echo("real recordings (Debian packages): "
                   + "; ".join(f"{name}, {licence}" for name, licence in packages))
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


@click.command("export")
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
    """Export MODEL (a shipped model: default, msd-vgg, mtt-vgg, tags-plain, tags-robust, tags-live; or a
    safetensors file) to ONNX or TorchScript, metadata inside."""
    from dreamfx.dream.ascent import Objective
    from dreamfx.export import export_model
    from dreamfx.nets.models import load_model
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
