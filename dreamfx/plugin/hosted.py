"""Plugins hosted from outside pedalboard's built-ins: VST3 (and Audio Units on macOS) through
``pedalboard.load_plugin``, VST3 found in the standard folders; LV2 is :mod:`dreamfx.plugin.lv2`.

Layer: below presets and the chain; imports pedalboard and dreamfx.errors.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pedalboard

from dreamfx.errors import DreamfxError, PluginMissing


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


def load_external(path: Path, params: dict):
    """A VST3 plugin file (or an Audio Unit on macOS) through pedalboard.load_plugin, its parameters set by name
    (pedalboard checks their ranges)."""
    kind = "Audio Unit" if Path(path).suffix == ".component" else "VST3 plugin"
    if not Path(path).exists():
        raise PluginMissing(f"{kind} {path} not found (dreamfx plugins lists the VST3 plugins in "
                           f"{', '.join(map(str, vst3_folders()))})")
    try:
        plugin = pedalboard.load_plugin(str(path))
    except (ImportError, RuntimeError, ValueError) as exc:
        raise DreamfxError(f"{kind} {path} could not be loaded: {str(exc).splitlines()[0]}") from None
    for key, value in params.items():
        try:
            setattr(plugin, key, value)
        except (AttributeError, TypeError, ValueError) as exc:
            raise DreamfxError(f"{kind} {path}: {key} = {value!r}: {str(exc).splitlines()[0]}") from None
    return plugin


def external_prefix(plugin) -> str | None:
    """"vst3:" or "au:" for a plugin pedalboard.load_plugin loaded (by its file), None for anything else."""
    path = str(getattr(plugin, "path_to_plugin_file", ""))
    return "vst3:" if path.endswith(".vst3") else "au:" if path.endswith(".component") else None
