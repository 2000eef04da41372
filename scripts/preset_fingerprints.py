"""Fingerprints of every shipped preset's render of the bundled example clip, to show a change of layout (or any
change meant to keep behaviour) renders every preset bit for bit as before.

    python scripts/preset_fingerprints.py before.json                 # render, write the fingerprints
    python scripts/preset_fingerprints.py after.json --compare before.json   # ... and compare: exit 1 on a difference

Each preset renders through the command line (``dreamfx process``: preset, recipe, chain, file writer), once as a
file and, for the default preset, once as a folder of one file (the folder render's path).  A fingerprint is the
SHA-256 of the written file's bytes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "dreamfx" / "assets" / "example.flac"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def render(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "dreamfx.cli", "process", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise click.ClickException(f"dreamfx process {' '.join(args)} failed: {done.stderr.strip()}")


@click.command()
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--compare", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Fingerprints written before: print every difference, exit 1 if any.")
def main(output: Path, compare: Path | None) -> None:
    """Render every preset in presets/ and write their fingerprints to OUTPUT (JSON)."""
    prints = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for toml in sorted((ROOT / "presets").glob("*.toml")):
            out = tmp / f"{toml.stem}.wav"
            render([str(EXAMPLE), str(out), "--preset", toml.stem])
            prints[toml.stem] = sha256(out)
            click.echo(f"{toml.stem:24s} {prints[toml.stem][:16]}")
        folder_in, folder_out = tmp / "in", tmp / "out"
        folder_in.mkdir()
        shutil.copy(EXAMPLE, folder_in / EXAMPLE.name)
        render([str(folder_in), str(folder_out), "--preset", "default"])
        for written in sorted(p for p in folder_out.rglob("*") if p.is_file()):
            key = f"default (folder) {written.relative_to(folder_out)}"
            prints[key] = sha256(written)
            click.echo(f"{key:24s} {prints[key][:16]}")
    output.write_text(json.dumps(prints, indent=1))
    if compare is not None:
        before = json.loads(compare.read_text())
        differ = sorted(k for k in before.keys() | prints.keys() if before.get(k) != prints.get(k))
        click.echo(f"{len(prints) - len(differ)} of {len(before | prints)} renders identical to {compare}"
                   + (f"; different: {', '.join(differ)}" if differ else ""))
        sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
