"""The presets subcommand: list, show, validate, save."""

from __future__ import annotations

from pathlib import Path

import click

from dreamfx.audio_io import check_output_path
from dreamfx.cli.options import dream_options
from dreamfx.errors import DreamfxError
from dreamfx.plugin.presets import load_preset
from dreamfx.recipe import build_chain


@click.group()
def presets() -> None:
    """List, show, check and save presets."""


@presets.command("list")
def presets_list() -> None:
    """The shipped presets, with their descriptions."""
    from dreamfx.plugin.presets import PRESET_DIR, preset_names
    names = preset_names()
    width = max(map(len, names), default=0)
    for name in names:
        try:
            description = load_preset(name).description
        except DreamfxError as exc:  # e.g. an LV2 plugin it hosts is not installed: the others are still listed
            description = f"(cannot be loaded here: {exc})"
        click.echo(f"{name:<{width}}  {description}")
    click.echo(f"({len(names)} presets in {PRESET_DIR})")


@presets.command("show")
@click.argument("name")
def presets_show(name: str) -> None:
    """Print a preset (a name or a .toml path) as its TOML, after checking it."""
    from dreamfx.plugin.presets import preset_path
    from dreamfx.recipe import validate_preset
    validate_preset(name)
    path = preset_path(name)
    click.echo(f"# {path}")
    click.echo(path.read_text(encoding="utf-8"), nl=False)


@presets.command("validate")
@click.argument("files", nargs=-1, required=True)
def presets_validate(files) -> None:
    """Check preset files completely (structure, values, plugins, model); one line each."""
    from dreamfx.recipe import validate_preset
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
    from dreamfx.plugin.presets import save_preset
    check_output_path(output, [], overwrite, formats=(".toml",))
    source = load_preset(preset)
    chain = build_chain(source, model, chain_spec, **overrides)
    saved = chain.to_preset(name or output.stem, description or source.description, source.midi)
    save_preset(saved, output)
    click.echo(f"wrote {output}")
