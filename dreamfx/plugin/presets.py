"""Presets: TOML files describing a dream, its MIDI map and the chain of plugins around it.

    version = 1
    name = "default"
    description = "one line"

    [dream]                 # DreamEffect parameters (see DreamEffect)
    model = "default"       # a shipped model ("default", "msd-vgg", "mtt-vgg", "tags-plain", "tags-robust",
                            # "tags-live") or a file path, relative to this file
    intensity = 0.8
    layer = "conv3"
    band_hz = [200.0, 4000.0]

    [midi]                  # optional; the default map when absent (see dreamfx.plugin.midi.MidiMap)
    notes = true
    programs = ["default", "metal-hallucination"]   # program change n -> programs[n]
    [midi.cc]
    1 = "intensity"

    [[chain]]               # stages in order; plugin = "dream" places the dream
    plugin = "dream"
    [[chain]]
    plugin = "Reverb"
    room_size = 0.3
    [[chain]]               # an installed LV2 plugin by URI, its controls by symbol (dreamfx plugins URI);
    plugin = "lv2:http://drobilla.net/plugins/mda/Overdrive"   # or "vst3:PATH" (relative to this file)
    drive = 0.4

Presets are data: parsed with tomllib, written with tomli_w, validated key by
key, never executed.  Every error names the file, the key path, the bad value
and what is allowed.  Loading, saving and loading again gives the same preset.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pedalboard
import tomli_w

from dreamfx.errors import DreamfxError, PluginMissing
from dreamfx.files import atomic_path
from dreamfx.nets.models import SHIPPED_MODELS
from dreamfx.plugin.hosted import load_external
from dreamfx.plugin.lv2 import LV2Plugin

PRESET_VERSION = 1
# The dream parameters that can change while audio runs (DreamEffect's tunable ones), in the order they are
# applied (layer before channel/target).
TUNABLE = ("intensity", "iterations", "step", "mix", "layer", "channel", "channels", "target", "targets", "layers",
           "seed", "jitter", "max_gain_db", "smooth_bins", "smooth_frames", "octaves", "memory", "preserve_level",
           "band_hz", "canvas_db", "canvas_slope", "reconstruction", "phase_iterations", "consistency", "transforms",
           "match", "guide")
MIDI_PARAMETERS = {  # name -> (low, high) of the 0..127 controller range
    "intensity": (0.0, 1.0), "mix": (0.0, 1.0), "iterations": (0, 32), "step": (0.0, 0.5), "layer": (0, 1),
}
# A controller may also move a stage's control over its range: "chain[2].drive" (stage 2's control "drive").
STAGE_CONTROL = re.compile(r"chain\[(\d+)\]\.(\w+)")
# presets/ of a source checkout (editable install), else the copy a wheel installs under <prefix>/share.
PRESET_DIR = next((d for d in (Path(__file__).resolve().parents[2] / "presets",
                               Path(sys.prefix) / "share" / "dreamfx" / "presets") if d.is_dir()),
                  Path(sys.prefix) / "share" / "dreamfx" / "presets")
# The bundled guide given to presets that need one (dream.match without a guide) where no one chooses: the
# gallery, the validator, the tests.  CC BY-SA 3.0, see presets/guides/LICENSE-CC-BY-SA-3.0.txt.
EXAMPLE_GUIDE = PRESET_DIR / "guides" / "muldjord-mutilated-mime.ogg"
TOP_KEYS = ("version", "name", "description", "dream", "midi", "live", "chain")
LIVE_KEYS = {"headroom_ms": (0.0, 1000.0)}  # live-only settings -> allowed range
CONSTRUCTION_KEYS = ("model", "backend", "device", "chunk_frames", "context_frames", "ensemble")  # fixed once built
GUIDE_CHECKSUM = "guide_sha256"  # the guide file's SHA-256, written by save_preset, checked when the preset loads
DREAM_KEYS = CONSTRUCTION_KEYS + TUNABLE + (GUIDE_CHECKSUM,)
MIDI_KEYS = ("cc", "notes", "programs")
OBJECTIVE_KEYS = ("channel", "channels", "target", "targets", "layers", "guide")  # each picks what to dream
HOSTED_PREFIXES = ("lv2:", "vst3:", "au:")  # stages hosted from outside pedalboard: lv2:URI, vst3:PATH, au:PATH
LV2_STATE_KEY = "lv2_state"  # an LV2 stage's own state (Turtle), beside its controls
NATIVE_PLUGINS = ("Bitcrush", "Chorus", "Clipping", "Compressor", "Delay", "Distortion", "Gain", "HighShelfFilter",
                  "HighpassFilter", "Invert", "LadderFilter", "Limiter", "LowShelfFilter", "LowpassFilter",
                  "NoiseGate", "PeakFilter", "Phaser", "Reverb")


@dataclass
class MidiMap:
    """Which controller moves which parameter, and which preset each program change selects."""

    cc: dict[int, str] = field(default_factory=lambda: {1: "intensity", 2: "mix", 3: "iterations", 4: "step",
                                                         5: "layer"})
    notes: bool = True  # note-on/off choose the target class
    programs: tuple[str, ...] = ()  # program change n -> preset programs[n]; empty: the shipped presets, sorted

    def bind(self, number: int, name: str) -> None:
        """Make controller ``number`` move ``name``, and no other controller move it."""
        self.cc = {n: p for n, p in self.cc.items() if p != name}
        self.cc[number] = name
        self.__post_init__()

    def __post_init__(self):
        for number, name in self.cc.items():
            if not (isinstance(number, int) and 0 <= number <= 127):
                raise DreamfxError(f"MIDI CC number {number!r} is outside 0..127")
            if not is_midi_parameter(name):
                raise DreamfxError(f"MIDI CC {number} maps to unknown parameter {name!r}; use one of "
                                   f"{', '.join(MIDI_PARAMETERS)} or a plugin's control, chain[N].symbol")


@dataclass
class Preset:
    """A parsed, structurally valid preset; values are checked for good when the chain is built."""

    name: str
    description: str
    path: Path | None = None
    dream: dict = field(default_factory=dict)
    midi: MidiMap | None = None  # None: the default map
    chain: list[dict] = field(default_factory=lambda: [{"plugin": "dream"}])
    live: dict = field(default_factory=dict)  # headroom_ms: the worker's time per chunk live (default: measured)

    @property
    def where(self) -> str:
        return str(self.path) if self.path else f"preset {self.name!r}"

    @property
    def needs_guide(self) -> bool:
        """A guided preset without a guide of its own (the user gives one: --guide FILE)."""
        return needs_guide(self.dream)

    def example_overrides(self) -> dict:
        """What building this preset needs where no one chooses (gallery, validator, tests): the bundled
        :data:`EXAMPLE_GUIDE` when it needs a guide."""
        return {"guide": str(EXAMPLE_GUIDE)} if self.needs_guide else {}

    def midi_map(self) -> MidiMap:
        return self.midi or MidiMap()

    def model_source(self, model, key: str = "model") -> str | Path:
        """``model`` (the value of dream.<key>) as a shipped model's name or a model file's path (relative to the
        preset file)."""
        if not isinstance(model, str):
            raise DreamfxError(f"{self.where}: dream.{key} = {model!r}: must be a shipped model's name "
                               f"({', '.join(SHIPPED_MODELS)}) or a model file's path")
        if model in SHIPPED_MODELS:
            return model
        return self.file_path(model, key, f" and no shipped model ({', '.join(SHIPPED_MODELS)})")

    def file_path(self, value: str, key: str, otherwise: str = "") -> Path:
        """dream.<key> = ``value``, a file's path (relative to the preset file), checked to exist."""
        if not isinstance(value, str):
            raise DreamfxError(f"{self.where}: dream.{key} = {value!r}: must be a file's path")
        path = Path(value)
        if not path.is_absolute() and self.path is not None:
            path = self.path.parent / path
        if not path.is_file():
            raise DreamfxError(f"{self.where}: dream.{key} = {value!r}: no such file (a relative path is relative "
                               f"to the preset file){otherwise}")
        return path

    def guide_path(self, value: str) -> Path:
        """dream.guide = ``value``: the guide recording's path (relative to the preset file), checked against
        dream.guide_sha256 when the preset has one."""
        path = self.file_path(value, "guide")
        expected = self.dream.get(GUIDE_CHECKSUM)
        if expected is not None and not (isinstance(expected, str) and re.fullmatch("[0-9a-f]{64}", expected)):
            raise DreamfxError(f"{self.where}: dream.{GUIDE_CHECKSUM} = {expected!r}: must be the guide file's SHA-256, "
                               "64 hex digits (dreamfx presets save writes it)")
        if expected is not None and file_sha256(path) != expected:
            raise DreamfxError(f"{self.where}: dream.guide = {value!r}: the file differs from the one the preset was "
                               f"saved with (sha256 {expected[:12]}...): restore it, or remove guide_sha256 to accept "
                               "this one")
        return path

    def stage_plugin(self, index: int, stage: dict):
        """The plugin of chain[index] (not the dream): a pedalboard plugin, an LV2 plugin (``lv2:URI``) or a VST3
        or Audio Unit (``vst3:PATH``, ``au:PATH``, relative to the preset file), its parameters checked and set."""
        params = dict(stage)
        name = params.pop("plugin")
        where = f"{self.where}: chain[{index}]"
        if name.startswith(HOSTED_PREFIXES):
            return self._hosted_plugin(name, params, where)
        plugin = getattr(pedalboard, name)()
        allowed = plugin_parameter_names(plugin)
        for key, value in params.items():
            if key not in allowed:
                raise DreamfxError(f"{where}.{key}: {name} has no parameter {key!r}; it takes "
                                   f"{', '.join(allowed) or 'no parameters'}")
            current = getattr(plugin, key)
            if hasattr(type(current), "__members__"):  # an enum (LadderFilter.mode): stored by name
                members = list(type(current).__members__)
                if value not in members:
                    raise DreamfxError(f"{where}.{key} = {value!r}: use one of {', '.join(members)}")
                value = type(current).__members__[value]
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise DreamfxError(f"{where}.{key} = {value!r}: must be a number")
            try:
                setattr(plugin, key, value)
            except (TypeError, ValueError) as exc:
                raise DreamfxError(f"{where}.{key} = {value!r}: {str(exc).splitlines()[0]}") from None
        return plugin

    def _hosted_plugin(self, name: str, params: dict, where: str):
        """An LV2 plugin by URI or a VST3 by path, its controls set (errors name the preset and the stage)."""
        kind, _, address = name.partition(":")
        try:
            if kind == "lv2":
                return LV2Plugin(address, **params)  # with lv2_state, its own state, where the preset has it
            path = Path(address) if Path(address).is_absolute() or self.path is None else self.path.parent / address
            return load_external(path, params)
        except DreamfxError as exc:
            hint = f" (this preset says: {self.description})" if isinstance(exc, PluginMissing) and self.description \
                else ""
            raise type(exc)(f"{where}: {exc}{hint}") from None

    def document(self) -> dict:
        """The TOML document of this preset (what :func:`save_preset` writes)."""
        doc = {"version": PRESET_VERSION, "name": self.name, "description": self.description, "dream": self.dream}
        if self.midi is not None:
            m = self.midi
            doc["midi"] = {"notes": m.notes, "programs": list(m.programs),
                           "cc": {str(number): name for number, name in sorted(m.cc.items())}}
        if self.live:
            doc["live"] = self.live
        doc["chain"] = self.chain
        return doc



def plugin_parameter_names(plugin) -> list[str]:
    """The settable parameters of a native pedalboard plugin (its properties, e.g. room_size)."""
    return sorted(k for k, v in vars(type(plugin)).items()
                  if isinstance(v, property) and v.fset is not None and not k.startswith("_"))


def plugin_parameters(plugin) -> dict:
    """A native plugin's parameter values as TOML values: floats at the float32 precision pedalboard keeps
    (0.12, not 0.11999999731779099), enums by name."""
    params = {}
    for key in plugin_parameter_names(plugin):
        value = getattr(plugin, key)
        params[key] = value.name if hasattr(type(value), "__members__") else float(str(np.float32(value)))
    return params


def _fail(where: str, message: str):
    raise DreamfxError(f"{where}: {message}")


def _check_type(where: str, key: str, value, kind, what: str) -> None:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        _fail(where, f"{key} = {value!r}: must be {what}")


def parse_preset(data: dict, where: str, path: Path | None = None) -> Preset:
    """Check the structure of a parsed TOML document and return a Preset (values are checked by
    :meth:`Preset.build_chain`)."""
    for key in data:
        if key not in TOP_KEYS:
            _fail(where, f"unknown key {key!r}; allowed top-level keys: {', '.join(TOP_KEYS)}")
    if data.get("version") != PRESET_VERSION or isinstance(data.get("version"), bool):
        _fail(where, f"version = {data.get('version')!r}: this dreamfx reads presets with version = {PRESET_VERSION}")
    name, description = data.get("name", path.stem if path else "preset"), data.get("description", "")
    _check_type(where, "name", name, str, "a string")
    _check_type(where, "description", description, str, "a string")
    dream = data.get("dream", {})
    _check_type(where, "dream", dream, dict, "a table ([dream])")
    for key in dream:
        if key not in DREAM_KEYS:
            _fail(where, f"dream.{key} is not a dream parameter; allowed: {', '.join(DREAM_KEYS)}")
    midi = _parse_midi(data["midi"], where) if "midi" in data else None
    live = data.get("live", {})
    _check_type(where, "live", live, dict, "a table ([live])")
    for key, value in live.items():
        if key not in LIVE_KEYS:
            _fail(where, f"live.{key} is not a live setting; allowed: {', '.join(LIVE_KEYS)}")
        low, high = LIVE_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            _fail(where, f"live.{key} = {value!r}: must be a number in {low:g}..{high:g}")
    chain = data.get("chain", [{"plugin": "dream"}])
    if not isinstance(chain, list) or not all(isinstance(s, dict) for s in chain):
        _fail(where, "chain must be an array of tables ([[chain]])")
    for i, stage in enumerate(chain):
        plugin = stage.get("plugin")
        if not is_stage_name(plugin):
            _fail(where, f"chain[{i}].plugin = {plugin!r}: use \"dream\", one of {', '.join(NATIVE_PLUGINS)}, "
                         "\"lv2:URI\" (an installed LV2 plugin: dreamfx plugins lists them), \"vst3:PATH\" or "
                         "\"au:PATH\"")
        if plugin == "dream" and len(stage) > 1:
            _fail(where, f"chain[{i}]: the dream stage takes its parameters from [dream], not from the chain entry")
    if sum(s.get("plugin") == "dream" for s in chain) != 1:
        _fail(where, "chain must contain exactly one stage with plugin = \"dream\"")
    return Preset(name, description, path, dict(dream), midi, [dict(s) for s in chain], dict(live))


def _parse_midi(table, where: str) -> MidiMap:
    _check_type(where, "midi", table, dict, "a table ([midi])")
    for key in table:
        if key not in MIDI_KEYS:
            _fail(where, f"midi.{key} is not a MIDI setting; allowed: {', '.join(MIDI_KEYS)}")
    cc = table.get("cc", {})
    _check_type(where, "midi.cc", cc, dict, "a table of controller number = parameter name")
    numbers = {}
    for number, name in cc.items():
        if not number.isdigit() or not 0 <= int(number) <= 127:
            _fail(where, f"midi.cc.{number}: controller numbers are 0..127")
        if not is_midi_parameter(name):
            _fail(where, f"midi.cc.{number} = {name!r}: use one of {', '.join(MIDI_PARAMETERS)} or a hosted "
                         "plugin's control, chain[N].symbol")
        numbers[int(number)] = name
    notes = table.get("notes", True)
    _check_type(where, "midi.notes", notes, bool, "true or false")
    programs = table.get("programs", [])
    if not isinstance(programs, list) or not all(isinstance(p, str) for p in programs) or len(programs) > 128:
        _fail(where, f"midi.programs = {programs!r}: must be a list of at most 128 preset names")
    return MidiMap(numbers, notes, tuple(programs))


RENAMED = {"msd-heavy-metal": "msd-metal"}  # shipped presets renamed: old name -> new name (issue 31)


def preset_path(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """A preset name (file in presets/) or a path to a .toml file (relative to ``relative_to``'s folder)."""
    p = Path(name_or_path)
    if relative_to is not None and p.suffix == ".toml" and not p.is_absolute():
        p = relative_to.parent / p
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise DreamfxError(f"preset file {p} not found")
        return p
    candidate = PRESET_DIR / f"{name_or_path}.toml"
    renamed = RENAMED.get(str(name_or_path))
    if renamed:
        raise DreamfxError(f"preset {str(name_or_path)!r} is now called {renamed!r}: write --preset {renamed}")
    if not candidate.is_file():
        raise DreamfxError(f"unknown preset {str(name_or_path)!r}: available presets are "
                           f"{', '.join(preset_names()) or '(none)'}")
    return candidate


def preset_names() -> list[str]:
    """Names of the shipped presets, sorted."""
    return sorted(f.stem for f in PRESET_DIR.glob("*.toml"))


def load_preset(name_or_path: str | Path) -> Preset:
    """Load a preset by name or path and check its structure and its native plugins' parameters."""
    path = preset_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DreamfxError(f"{path}: invalid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise DreamfxError(f"{path}: not a UTF-8 text file") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise DreamfxError(f"{path}: invalid TOML (arrays or tables nested too deeply for a preset)") from None
    preset = parse_preset(data, str(path), path)
    stages = {i: preset.stage_plugin(i, stage) for i, stage in enumerate(preset.chain)  # fail now, not at render
              if stage["plugin"] != "dream"}
    for number, name in preset.midi_map().cc.items():
        if (control := STAGE_CONTROL.fullmatch(name)) is not None:
            try:
                control_range(stages.get(int(control[1])), control[2])
            except DreamfxError as exc:
                raise DreamfxError(f"{path}: midi.cc.{number} = {name!r}: {exc}") from None
    for i, program in enumerate(preset.midi_map().programs):
        try:
            preset_path(program, relative_to=path)
        except DreamfxError as exc:
            raise DreamfxError(f"{path}: midi.programs[{i}] = {program!r}: {exc}") from None
    return preset


def is_midi_parameter(name) -> bool:
    """Whether a controller can be mapped to ``name``: a dream parameter or a stage's control, chain[N].symbol."""
    return isinstance(name, str) and (name in MIDI_PARAMETERS or STAGE_CONTROL.fullmatch(name) is not None)


@dataclass(frozen=True)
class ControlRange:
    """What a MIDI controller sweeps a stage's control over: ``low`` at 0, ``high`` at 127, in equal steps, or
    in equal ratios when ``logarithmic`` (frequencies); rounded when ``whole``."""

    low: float
    high: float
    whole: bool = False
    logarithmic: bool = False

    def at(self, value: int) -> float:
        """The control's value for controller value 0..127."""
        share = value / 127
        scaled = self.low * (self.high / self.low) ** share if self.logarithmic else \
            self.low + (self.high - self.low) * share
        return float(round(scaled)) if self.whole else scaled


# Frequencies end at 10 kHz: pedalboard's filters blow up above half the sample rate (inf at 22.05 kHz audio).
_UNIT, _FREQUENCY = ControlRange(0.0, 1.0), ControlRange(20.0, 10000.0, logarithmic=True)
# pedalboard's plugins declare no ranges: what a controller sweeps their controls over, where pedalboard allows
# (Reverb, Delay, Chorus's mix, the filters' frequencies and Q) or where the sound is musical (dB, times, rates).
NATIVE_CONTROLS = {
    "Reverb": {"room_size": _UNIT, "damping": _UNIT, "wet_level": _UNIT, "dry_level": _UNIT, "width": _UNIT},
    "Chorus": {"rate_hz": ControlRange(0.05, 10.0, logarithmic=True), "depth": _UNIT, "mix": _UNIT,
               "centre_delay_ms": ControlRange(1.0, 30.0), "feedback": ControlRange(0.0, 0.95)},
    "Phaser": {"rate_hz": ControlRange(0.05, 10.0, logarithmic=True), "depth": _UNIT, "mix": _UNIT,
               "centre_frequency_hz": ControlRange(100.0, 8000.0, logarithmic=True),
               "feedback": ControlRange(0.0, 0.95)},
    "Delay": {"delay_seconds": ControlRange(0.0, 2.0), "feedback": ControlRange(0.0, 0.95), "mix": _UNIT},
    "Distortion": {"drive_db": ControlRange(0.0, 50.0)},
    "Gain": {"gain_db": ControlRange(-40.0, 12.0)},
    "Clipping": {"threshold_db": ControlRange(-30.0, 0.0)},
    "Compressor": {"threshold_db": ControlRange(-50.0, 0.0), "ratio": ControlRange(1.0, 20.0),
                   "attack_ms": ControlRange(0.1, 100.0, logarithmic=True),
                   "release_ms": ControlRange(10.0, 1000.0, logarithmic=True)},
    "Limiter": {"threshold_db": ControlRange(-30.0, 0.0), "release_ms": ControlRange(10.0, 1000.0, logarithmic=True)},
    "Bitcrush": {"bit_depth": ControlRange(1.0, 16.0, whole=True)},
    "HighpassFilter": {"cutoff_frequency_hz": _FREQUENCY},
    "LowpassFilter": {"cutoff_frequency_hz": _FREQUENCY},
    "LadderFilter": {"cutoff_hz": _FREQUENCY, "resonance": _UNIT, "drive": ControlRange(1.0, 10.0)},
    **{name: {"cutoff_frequency_hz": _FREQUENCY, "gain_db": ControlRange(-24.0, 24.0),
              "q": ControlRange(0.1, 10.0, logarithmic=True)}
       for name in ("HighShelfFilter", "LowShelfFilter", "PeakFilter")},
}


def control_range(plugin, symbol: str) -> ControlRange:
    """What a controller sweeps the stage ``plugin``'s control ``symbol`` over: an LV2 control port's range, a
    VST3 parameter's, or for pedalboard's plugins :data:`NATIVE_CONTROLS`; one line when the stage has no such
    control with a range."""
    if isinstance(plugin, LV2Plugin):
        port = plugin.info.controls.get(symbol)
        if port is not None and np.isfinite(port.minimum + port.maximum):
            return ControlRange(port.minimum, port.maximum, port.integer or port.toggled,
                                port.logarithmic and port.minimum > 0)
    elif (native := NATIVE_CONTROLS.get(type(plugin).__name__, {}).get(symbol)) is not None:
        return native
    parameter = getattr(plugin, "parameters", {}).get(symbol) if not isinstance(plugin, LV2Plugin) else None
    if parameter is not None and hasattr(parameter, "range"):
        low, high, step = parameter.range
        return ControlRange(float(low), float(high), bool(step) and float(step).is_integer())
    if type(plugin).__name__ in NATIVE_CONTROLS:
        raise DreamfxError(f"{type(plugin).__name__} has no control {symbol!r} a controller can sweep: use one of "
                           f"{', '.join(NATIVE_CONTROLS[type(plugin).__name__])}")
    raise DreamfxError(f"that stage has no control {symbol!r} a controller can sweep (pedalboard's plugins: "
                       "docs/plugins.md; an LV2 or VST3 plugin's: dreamfx plugins URI lists an LV2 plugin's controls)")


def is_stage_name(name) -> bool:
    """Whether ``name`` names a chain stage: "dream", a pedalboard plugin, "lv2:URI", "vst3:PATH" or "au:PATH"."""
    return isinstance(name, str) and (name == "dream" or name in NATIVE_PLUGINS or
                                      (name.startswith(HOSTED_PREFIXES) and len(name.partition(":")[2]) > 0))


def needs_guide(dream: dict) -> bool:
    """Whether dream parameters (a preset's [dream], with any overrides) ask for a guide they lack: a ``match``
    without a guide or any other objective."""
    return "match" in dream and not any(k in dream for k in OBJECTIVE_KEYS + ("layer",))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_preset(preset: Preset, path: str | Path) -> Path:
    """Write ``preset`` as TOML to ``path`` (atomically); a relative model path is kept pointing at the model."""
    path = Path(path)
    if path.suffix != ".toml":
        raise DreamfxError(f"a preset file ends in .toml, got {path}")
    doc = preset.document()
    model = preset.dream.get("model", "default")
    if model not in SHIPPED_MODELS and not Path(model).is_absolute() and preset.path is not None:
        doc["dream"] = {**preset.dream, "model": os.path.relpath(preset.path.parent / model, path.parent)}
    if "guide" in preset.dream:  # the guide relative to the new file, with its checksum: copy both together
        guide = preset.path.parent / preset.dream["guide"] if preset.path else Path(preset.dream["guide"])
        doc["dream"] = {**doc["dream"], "guide": os.path.relpath(guide.resolve(), path.parent.resolve()),
                        GUIDE_CHECKSUM: file_sha256(guide)}
    with atomic_path(path) as tmp:
        tmp.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return path
