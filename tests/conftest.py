"""Shared fixtures: the bundled example clip, short excerpts of it, and system-package checks.

Tests that need a system package (FluidSynth) skip with a printed reason when it
is missing; with DREAMFX_REQUIRE_SYSTEM=1 (set by .ci/run) they fail instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import AudioFile

from dreamfx.nets.models import example_clip_path

EXAMPLE = example_clip_path()


MEASUREMENTS: list[str] = []


def pytest_configure(config):
    """Exported graphs are cached in a fresh folder, so the tests run the real exporter (and leave ~ alone)."""
    os.environ["DREAMFX_CACHE_DIR"] = tempfile.mkdtemp(prefix="dreamfx-cache-")


@pytest.fixture
def measured():
    """Call with a line of figures; the lines are printed in pytest's terminal summary."""
    return MEASUREMENTS.append


def pytest_terminal_summary(terminalreporter):
    if MEASUREMENTS:
        terminalreporter.section("dreamfx measurements")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)


DREAMFX = (sys.executable, "-m", "dreamfx.cli")  # the entry point, as a command line


def cli_subprocess(*args: str, timeout: float = 300, **options) -> subprocess.CompletedProcess:
    """``dreamfx ARGS`` in a fresh Python, as a user runs it: the entry point's exit status and one-line errors;
    stdout and stderr captured as text; ``options`` (cwd, env) go to subprocess.run."""
    return subprocess.run([*DREAMFX, *args], capture_output=True, text=True, timeout=timeout, **options)


def cli_output(*args: str) -> str:
    """What ``dreamfx ARGS`` prints, run in this process (no Python start: tests/test_cli.py runs the entry point
    in subprocesses); the command must succeed."""
    from click.testing import CliRunner

    from dreamfx.cli.commands import cli
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


def require_system(binary: str, install: str) -> str:
    """Path of ``binary``; skip (or fail under DREAMFX_REQUIRE_SYSTEM=1) when it is missing."""
    path = shutil.which(binary)
    if path is None:
        message = f"{binary} not installed (apt-get install -y {install})"
        if os.environ.get("DREAMFX_REQUIRE_SYSTEM") == "1":
            pytest.fail(message + " but DREAMFX_REQUIRE_SYSTEM=1")
        pytest.skip(message)
    return path


def require_module(name: str, install: str):
    """Import ``name``; skip (or fail under DREAMFX_REQUIRE_SYSTEM=1) when it is missing."""
    try:
        return __import__(name)
    except (ImportError, OSError) as exc:
        message = f"Python module {name} unavailable ({exc}; {install})"
        if os.environ.get("DREAMFX_REQUIRE_SYSTEM") == "1":
            pytest.fail(message + " but DREAMFX_REQUIRE_SYSTEM=1")
        pytest.skip(message)


def require_lv2(uri: str, package: str):
    """An installed LV2 plugin's info; skip (or fail under DREAMFX_REQUIRE_SYSTEM=1) when lilv or the plugin is
    missing."""
    from dreamfx.errors import DreamfxError
    from dreamfx.plugin.lilv import plugin_info
    try:
        return plugin_info(uri)
    except DreamfxError as exc:
        message = f"LV2 plugin {uri} unavailable ({exc}; apt-get install -y liblilv-0-0 {package})"
        if os.environ.get("DREAMFX_REQUIRE_SYSTEM") == "1":
            pytest.fail(message + " but DREAMFX_REQUIRE_SYSTEM=1")
        pytest.skip(message)


def require_preset_plugins(name: str) -> None:
    """Skip (or fail under DREAMFX_REQUIRE_SYSTEM=1) a test of shipped preset ``name`` when an LV2 plugin its chain
    hosts is not installed (its description names the package)."""
    import tomllib
    from dreamfx.plugin.presets import preset_path
    for stage in tomllib.loads(preset_path(name).read_text())["chain"]:
        if stage["plugin"].startswith("lv2:"):
            require_lv2(stage["plugin"].removeprefix("lv2:"), f"(the package preset {name}'s description names)")


def excerpt(seconds: float, sample_rate: int = 44100, start: float = 2.0) -> np.ndarray:
    """(2, n) float32 excerpt of the example clip, resampled with pedalboard.io when needed."""
    with AudioFile(str(EXAMPLE)).resampled_to(sample_rate) as f:
        f.seek(int(start * sample_rate))
        return f.read(int(seconds * sample_rate)).astype(np.float32)


@pytest.fixture(scope="session")
def example() -> tuple[np.ndarray, int]:
    with AudioFile(str(EXAMPLE)) as f:
        return f.read(f.frames).astype(np.float32), int(f.samplerate)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
