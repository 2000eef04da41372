"""The ``dreamfx`` command group: every subcommand, gathered from the modules that define them.

Importing this imports torch (through the dream options); ``dreamfx.cli.main`` does so inside its Ctrl-C handling.
"""

from __future__ import annotations

import click

from dreamfx.cli import live, models, plugins, presets, render, validate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dreamfx")
def cli() -> None:
    """dreamfx: a DeepDream audio effect."""


for command in (render.process, render.demo, render.analyze, render.visualize, render.gallery, models.info,
                models.export_command, live.live, live.devices, presets.presets, plugins.plugins,
                validate.validate_command):
    cli.add_command(command)
