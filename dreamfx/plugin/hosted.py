"""Plugins hosted from outside pedalboard's built-ins: VST3 (and Audio Units on macOS) through
``pedalboard.load_plugin``, found in the standard folders; LV2 is :mod:`dreamfx.plugin.lv2`.

Layer: below presets and the chain; imports pedalboard and dreamfx.errors.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pedalboard

from dreamfx.errors import DreamfxError


def vst3_folders() -> list[Path]:
    """The standard VST3 folders of this system (per user, then system-wide)."""
    home = Path.home()
    if sys.platform == "darwin":
        return [home / "Library/Audio/Plug-Ins/VST3", Path("/Library/Audio/Plug-Ins/VST3")]
    if sys.platform == "win32":
        return [Path(os.environ.get("COMMONPROGRAMFILES", r"C:\Program Files\Common Files")) / "VST3"]
    return [home / ".vst3", Path("/usr/lib/vst3"), Path("/usr/local/lib/vst3")]


def vst3_files() -> list[Path]:
    """The .vst3 bundles in the standard folders, sorted."""
    return sorted(p for folder in vst3_folders() if folder.is_dir() for p in folder.rglob("*.vst3")
                  if not any(parent.suffix == ".vst3" for parent in p.parents))


def load_vst3(path: Path, params: dict):
    """A VST3 plugin file through pedalboard.load_plugin, its parameters set by name (pedalboard checks their
    ranges)."""
    if not Path(path).exists():
        raise DreamfxError(f"VST3 plugin {path} not found (dreamfx plugins lists the VST3 plugins in "
                           f"{', '.join(map(str, vst3_folders()))})")
    try:
        plugin = pedalboard.load_plugin(str(path))
    except (ImportError, RuntimeError, ValueError) as exc:
        raise DreamfxError(f"VST3 plugin {path} could not be loaded: {str(exc).splitlines()[0]}") from None
    for key, value in params.items():
        try:
            setattr(plugin, key, value)
        except (AttributeError, TypeError, ValueError) as exc:
            raise DreamfxError(f"VST3 plugin {path}: {key} = {value!r}: {str(exc).splitlines()[0]}") from None
    return plugin
