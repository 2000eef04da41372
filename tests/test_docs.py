"""The documentation site: built with MkDocs in strict mode (a warning fails it), its generated pages hold every
command and option of the CLI, every shipped preset and model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from conftest import require_module, require_system
from test_gallery import page_report, serve
from dreamfx.cli.commands import cli
from dreamfx.nets.models import SHIPPED_MODELS
from dreamfx.plugin.presets import preset_names

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    require_module("mkdocs", "pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)], cwd=ROOT,
                           capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert build.returncode == 0, build.stderr[-3000:]
    assert "WARNING" not in build.stderr, build.stderr[-3000:]
    return out


def commands(group: click.Group, prefix: str = "dreamfx"):
    """(name, command) of every subcommand, nested groups included."""
    for name, command in group.commands.items():
        yield f"{prefix} {name}", command
        if isinstance(command, click.Group):
            yield from commands(command, f"{prefix} {name}")


def test_the_site_builds_strict_and_its_cli_reference_has_every_command_and_option(site):
    reference = (site / "cli" / "index.html").read_text()
    missing = [f"{name} {option}" for name, command in commands(cli) for parameter in command.params
               for option in getattr(parameter, "opts", []) if option.startswith("-") and option not in reference]
    missing += [name for name, _ in commands(cli) if name not in reference]
    assert not missing, missing


def test_the_generated_pages_list_every_preset_and_model(site):
    presets = (site / "presets" / "index.html").read_text()
    live = (site / "live" / "index.html").read_text()
    models = (site / "models" / "index.html").read_text()
    assert all(f"<code>{name}</code>" in presets and f"<code>{name}</code>" in live for name in preset_names())
    assert all(f"<code>{name}</code>" in models for name in SHIPPED_MODELS)
    api = (site / "api" / "index.html").read_text()
    assert all(name in api for name in ("DreamEffect", "Chain", "LV2Plugin", "render_file", "MidiControl"))


def test_the_listen_page_plays_its_recordings_in_chromium(site, measured):
    """docs/listen.md (made by scripts/listen_page.py from the project's renders): every player's audio and every
    spectrogram is in the built site and loads in headless Chromium."""
    chromium = require_system("chromium", "chromium")
    shutil.copy(Path(__file__).parent / "gallery_check.html", site / "check.html")
    server = serve(site)
    try:
        page = page_report(chromium, f"http://127.0.0.1:{server.server_address[1]}", "listen/index.html",
                           site.parent / "profile")
    finally:
        server.shutdown()
    audios = page["audios"]
    images = [i for i in page["images"] if i["src"].endswith(".png")]  # the spectrograms (not the theme's)
    measured(f"listen page: {len(audios)} players and {len(images)} spectrograms loaded in Chromium")
    assert len(audios) >= 4 and all(a["ok"] and a["duration"] > 1.0 for a in audios), audios
    assert len(images) >= 4 and all(i["ok"] for i in images), images
    assert all((site / "listen" / Path(a["src"]).name).is_file() for a in audios)  # in the built site
