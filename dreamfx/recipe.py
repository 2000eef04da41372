"""The recipe: a preset and its overrides -> the chain, in one place.

Used by every way a chain is built from a name: the command line, folder and cluster renders (each worker builds
its chain from a :class:`ChainRecipe`, plain values, never unpickled objects), live programs, the validator and
the gallery.  Overrides come as Python values or as the command line writes them (``jazz=0.6,metal=0.4``).

Layer: above dreamfx.plugin (presets, DreamEffect, Chain); below render, live, validate and cli.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dreamfx.dream.guide import GuideFeatures
from dreamfx.errors import DreamfxError
from dreamfx.nets.models import SHIPPED_MODELS
from dreamfx.plugin.chain import Chain
from dreamfx.plugin.presets import NATIVE_PLUGINS, MidiMap, Preset, is_stage_name, load_preset


def build_chain(preset: str | Path | Preset, model=None, chain_spec: str | None = None, **overrides) -> Chain:
    """The Chain of a preset (a name or path, or one already loaded, left unchanged) with overrides applied:
    ``model`` (a shipped name or a file), ``chain_spec`` (comma-separated stages replacing the preset's chain,
    e.g. 'Reverb,dream' or 'dream,lv2:http://drobilla.net/plugins/mda/Overdrive'), dream parameters (None keeps the preset's; blends and tables may be written as text)."""
    p = preset if isinstance(preset, Preset) else load_preset(preset)
    if model is not None:
        overrides["model"] = model if model in SHIPPED_MODELS else str(Path(model).resolve())
    if overrides.get("guide") is not None and not isinstance(overrides["guide"], GuideFeatures):
        guide = Path(overrides["guide"])
        if not guide.is_file():
            raise DreamfxError(f"--guide {guide}: no such file: give a recording (wav, flac, ogg, mp3) to dream "
                               "toward")
        overrides["guide"] = str(guide.resolve())
    for single, blend in (("target", "targets"), ("layer", "layers")):
        value = overrides.get(single)
        if value is not None and "=" in value:
            overrides[single], overrides[blend] = None, parse_blend(value, single)
    for table in ("ensemble", "transforms"):
        if isinstance(overrides.get(table), str):
            overrides[table] = parse_blend(overrides[table], table)
    if overrides.get("canvas_db") not in (None, "off"):
        try:
            overrides["canvas_db"] = float(overrides["canvas_db"])
        except ValueError:
            raise DreamfxError(f"--canvas {overrides['canvas_db']!r}: give a level in dB, e.g. -30, or 'off'") from None
    if chain_spec:
        stages = [s.strip() for s in chain_spec.split(",") if s.strip()]
        for s in stages:
            if not is_stage_name(s):
                raise DreamfxError(f"--chain: unknown stage {s!r}; use 'dream', one of {', '.join(NATIVE_PLUGINS)}, "
                                   "'lv2:URI' (dreamfx plugins lists the installed LV2 plugins), 'vst3:PATH' or 'au:PATH'")
        if stages.count("dream") != 1:
            raise DreamfxError("--chain must name the 'dream' stage exactly once, e.g. --chain 'Reverb,dream'")
        p = dataclasses.replace(p, chain=[{"plugin": s} for s in stages])
    return Chain.from_preset(p, **overrides)


def parse_blend(text: str, option: str) -> dict[str, float]:
    """'jazz=0.6,metal=0.4' -> {'jazz': 0.6, 'metal': 0.4} (``option`` names the CLI option in errors)."""
    blend = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        try:
            blend[name.strip()] = float(weight)
        except ValueError:
            raise DreamfxError(f"--{option} {text!r}: write name=value pairs, e.g. jazz=0.6,metal=0.4 (classes), "
                               "conv2=0.5,conv4=0.5 (layers), tags-robust=1 (ensemble), samples=4,shift_bins=2 "
                               "(transforms)") from None
    return blend


def validate_preset(name_or_path: str | Path) -> Preset:
    """Everything :func:`~dreamfx.plugin.presets.load_preset` checks, plus the model and every dream value
    (builds the chain; with the bundled example guide where the preset needs one)."""
    preset = load_preset(name_or_path)
    Chain.from_preset(preset, **preset.example_overrides())
    return preset


@dataclasses.dataclass(frozen=True)
class ChainRecipe:
    """What a worker needs to build the chain: :func:`build_chain`'s arguments, the MIDI automation file to play
    on every file (the chain is then built afresh for each file), and the render settings (buffer size, the
    dream stages' ``offline_batch``)."""

    preset: str = "default"
    model: str | None = None
    chain_spec: str | None = None
    overrides: tuple[tuple[str, object], ...] = ()  # (name, value) pairs of dream parameter overrides
    automation: str | None = None
    buffer_size: int = 8192
    batch: int = 1

    def midi_map(self) -> MidiMap:
        """The preset's MIDI map (what the automation's controllers move, as in dreamfx live)."""
        return load_preset(self.preset).midi_map()

    def build(self) -> Chain:
        chain = build_chain(self.preset, self.model, self.chain_spec, **dict(self.overrides))
        for effect in chain.dream_effects:
            effect.offline_batch = self.batch
        return chain
