"""The package's layers (issue 23): the import-linter contracts in pyproject.toml hold, they fail when a lower
layer imports a higher one, the import graph has no cycle, and the layout limits hold."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.fail("import-linter is not installed: pip install -e '.[test]'")
    return subprocess.run([exe, "--no-cache"], cwd=cwd, capture_output=True, text=True)


def test_the_layers_contract_holds():
    done = lint_imports(ROOT)
    assert done.returncode == 0 and "0 broken" in done.stdout, done.stdout[-3000:]


@pytest.mark.parametrize("module, upward, broken", [
    ("dreamfx/dsp/spectral.py", "from dreamfx.cli import main", "dreamfx.dsp.spectral -> dreamfx.cli"),
    ("dreamfx/engine/backends.py", "from dreamfx.export.exporters import onnx_dream_step",
     "dreamfx.engine.backends -> dreamfx.export.exporters"),
    ("dreamfx/export/exporters.py", "from dreamfx.plugin.effect import DreamEffect",
     "dreamfx.export.exporters -> dreamfx.plugin.effect"),
    ("dreamfx/plugin/presets.py", "from dreamfx.plugin.chain import Chain", "dreamfx.plugin.presets -> dreamfx.plugin.chain"),
])
def test_the_contract_fails_for_an_upward_import(tmp_path, module, upward, broken):
    # dreamfx/export links to export/: the copy holds the files
    shutil.copytree(ROOT / "dreamfx", tmp_path / "dreamfx", ignore=shutil.ignore_patterns("__pycache__", "assets"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    # the copy is the package lint-imports finds (it puts the working folder first on the path)
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{upward}  # an upward import\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0 and broken in done.stdout, done.stdout[-3000:]


def test_the_import_graph_has_no_cycle():
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter: pip install -e '.[test]'")
    import networkx
    graph = grimp.build_graph("dreamfx")
    imports = networkx.DiGraph((module, imported) for module in graph.modules
                               for imported in graph.find_modules_directly_imported_by(module))
    cycles = [sorted(c) for c in networkx.strongly_connected_components(imports) if len(c) > 1]
    assert len(graph.modules) > 40 and not cycles, cycles


def test_the_layout_limits():
    top = sorted(p.name for p in (ROOT / "dreamfx").glob("*.py"))
    assert len(top) <= 8, top
    sources = [p for part in ("dreamfx", "training", "benchmarks", "tests", "scripts")
               for p in (ROOT / part).rglob("*.py")]
    long = {str(p.relative_to(ROOT)): n for p in sources if (n := len(p.read_text().splitlines())) > 600}
    assert len(sources) > 80 and not long, long
    for package in (ROOT / "dreamfx").rglob("__init__.py"):
        doc = package.read_text().lstrip()
        assert doc.startswith('"""'), f"{package.relative_to(ROOT)} opens without a docstring"


def test_importing_a_lower_layer_loads_no_host():
    """``dreamfx`` loads its public names on first use: importing the STFT, or exporting a network, does not import
    the effect, the chain, presets, MIDI or the file renderer (it did before: dreamfx/__init__ imported them)."""
    import subprocess
    import sys
    script = ("import sys, dreamfx.dsp.spectral, dreamfx.export.exporters\n"
              "host = [m for m in sys.modules if m.startswith(('dreamfx.plugin', 'dreamfx.recipe', 'dreamfx.render',"
              " 'dreamfx.live', 'dreamfx.validate', 'dreamfx.cli'))]\n"
              "assert not host, host\n"
              "from dreamfx import Chain, DreamEffect, render_file\n"
              "assert 'dreamfx.plugin.chain' in sys.modules and 'dreamfx.render.file' in sys.modules")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
