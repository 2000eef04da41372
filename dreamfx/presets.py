"""Presets: TOML files describing a dream and the pedalboard chain around it.

    version = 1
    name = "default"
    description = "one line"

    [dream]                 # DreamEffect parameters
    intensity = 0.8
    layer = "conv3"

    [[chain]]               # stages in order; plugin = "dream" places the dream
    plugin = "dream"
    [[chain]]
    plugin = "Reverb"
    room_size = 0.3

Presets are data: parsed with tomllib, validated key by key, never executed.
Every error names the file, the key path, the bad value and what is allowed.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pedalboard

from dreamfx.chain import Chain
from dreamfx.effect import DreamEffect
from dreamfx.errors import DreamfxError

PRESET_VERSION = 1
# presets/ of a source checkout (editable install), else the copy a wheel installs under <prefix>/share.
PRESET_DIR = next((d for d in (Path(__file__).resolve().parent.parent / "presets",
                               Path(sys.prefix) / "share" / "dreamfx" / "presets") if d.is_dir()),
                  Path(sys.prefix) / "share" / "dreamfx" / "presets")
TOP_KEYS = {"version", "name", "description", "dream", "chain"}
DREAM_KEYS = {"model", "intensity", "iterations", "step", "mix", "layer", "channel", "target", "seed", "jitter",
              "max_gain_db", "smooth_bins", "smooth_frames", "preserve_level", "chunk_frames", "context_frames",
              "backend", "device"}
NATIVE_PLUGINS = ("Bitcrush", "Chorus", "Clipping", "Compressor", "Delay", "Distortion", "Gain", "HighShelfFilter",
                  "HighpassFilter", "Invert", "LadderFilter", "Limiter", "LowShelfFilter", "LowpassFilter",
                  "NoiseGate", "PeakFilter", "Phaser", "Reverb")
PLUGIN_METHODS = {"process", "reset", "is_effect", "is_instrument"}  # attributes that are not parameters


@dataclass
class Preset:
    name: str
    description: str
    path: Path | None
    dream: dict = field(default_factory=dict)
    chain: list[dict] = field(default_factory=lambda: [{"plugin": "dream"}])

    def dream_effect(self, **overrides) -> DreamEffect:
        """A DreamEffect with this preset's parameters, ``overrides`` (not None) taking precedence."""
        params = {**self.dream, **{k: v for k, v in overrides.items() if v is not None}}
        model = params.pop("model", None)
        if model is not None and model != "default":
            model = Path(model)
            if not model.is_absolute() and self.path is not None:
                model = self.path.parent / model
        try:
            return DreamEffect(None if model == "default" else model, **params)
        except DreamfxError as exc:
            raise DreamfxError(f"{self.where}: [dream] {exc}") from None

    def build_chain(self, **overrides) -> Chain:
        """The preset's whole chain, the dream stage built with ``overrides``."""
        stages = []
        for i, stage in enumerate(self.chain):
            params = dict(stage)
            name = params.pop("plugin")
            stages.append(self.dream_effect(**overrides) if name == "dream" else _native_plugin(self, i, name, params))
        return Chain(stages)

    @property
    def where(self) -> str:
        return str(self.path) if self.path else f"preset {self.name!r}"


def _native_plugin(preset: Preset, index: int, name: str, params: dict):
    plugin = getattr(pedalboard, name)()
    for key, value in params.items():
        where = f"{preset.where}: chain[{index}] ({name}).{key}"
        allowed = sorted(k for k in dir(type(plugin)) if not k.startswith("_") and k not in PLUGIN_METHODS)
        if key not in allowed:
            raise DreamfxError(f"{where}: unknown parameter; {name} takes {', '.join(allowed)}")
        try:
            setattr(plugin, key, value)
        except (TypeError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if isinstance(exc, ValueError) else "wrong type"
            raise DreamfxError(f"{where} = {value!r}: {reason}") from None
    return plugin


def _fail(where: str, message: str):
    raise DreamfxError(f"{where}: {message}")


def parse_preset(data: dict, where: str, path: Path | None = None) -> Preset:
    """Validate the structure of a parsed TOML document and return a Preset."""
    unknown = set(data) - TOP_KEYS
    if unknown:
        _fail(where, f"unknown key {sorted(unknown)[0]!r}; allowed top-level keys: {', '.join(sorted(TOP_KEYS))}")
    if data.get("version") != PRESET_VERSION:
        _fail(where, f"version = {data.get('version')!r}; this dreamfx reads presets with version = {PRESET_VERSION}")
    name = data.get("name", path.stem if path else "preset")
    description = data.get("description", "")
    for key, value in (("name", name), ("description", description)):
        if not isinstance(value, str):
            _fail(where, f"{key} = {value!r} must be a string")
    dream = data.get("dream", {})
    if not isinstance(dream, dict):
        _fail(where, "[dream] must be a table")
    unknown = set(dream) - DREAM_KEYS
    if unknown:
        _fail(where, f"dream.{sorted(unknown)[0]} is not a dream parameter; allowed: {', '.join(sorted(DREAM_KEYS))}")
    chain = data.get("chain", [{"plugin": "dream"}])
    if not isinstance(chain, list) or not all(isinstance(s, dict) for s in chain):
        _fail(where, "chain must be an array of tables ([[chain]])")
    for i, stage in enumerate(chain):
        plugin = stage.get("plugin")
        if plugin != "dream" and plugin not in NATIVE_PLUGINS:
            _fail(where, f"chain[{i}].plugin = {plugin!r}; use \"dream\" or one of {', '.join(NATIVE_PLUGINS)}")
        if plugin == "dream" and len(stage) > 1:
            _fail(where, f"chain[{i}]: the dream stage takes its parameters from [dream], not from the chain entry")
    if sum(s.get("plugin") == "dream" for s in chain) != 1:
        _fail(where, "chain must contain exactly one stage with plugin = \"dream\"")
    return Preset(name, description, path, dict(dream), [dict(s) for s in chain])


def preset_path(name_or_path: str | Path) -> Path:
    """A preset name (file in presets/) or a path to a .toml file."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise DreamfxError(f"preset file {p} not found")
        return p
    candidate = PRESET_DIR / f"{name_or_path}.toml"
    if not candidate.is_file():
        names = ", ".join(sorted(f.stem for f in PRESET_DIR.glob("*.toml"))) or "(none)"
        raise DreamfxError(f"unknown preset {str(name_or_path)!r}: available presets are {names}")
    return candidate


def load_preset(name_or_path: str | Path) -> Preset:
    """Load and validate a preset by name or path; its plugins are checked by building them."""
    path = preset_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DreamfxError(f"{path}: invalid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise DreamfxError(f"{path}: not a UTF-8 text file") from None
    preset = parse_preset(data, str(path), path)
    for i, stage in enumerate(preset.chain):  # fail now, not at render time
        params = dict(stage)
        name = params.pop("plugin")
        if name != "dream":
            _native_plugin(preset, i, name, params)
    return preset
