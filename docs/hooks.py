"""MkDocs hooks: the pages' generated parts, from the code and data they describe (never written by hand).

    <!-- presets-table -->   every preset in presets/: what it does, model, dream, chain, latency at 48 kHz
    <!-- midi-table -->      every preset's MIDI map
    <!-- models-table -->    every shipped model: what it learned from, its classes, licence (dreamfx info)
    <!-- benchmarks -->      BENCHMARKS.md, whole
"""

from __future__ import annotations

import re
from pathlib import Path

from dreamfx.errors import DreamfxError
from dreamfx.nets.models import SHIPPED_MODELS, model_path
from dreamfx.plugin.presets import MidiMap, load_preset, preset_names
from dreamfx.render.gallery import chain_summary, dream_summary

ROOT = Path(__file__).resolve().parents[1]


def cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def presets_table() -> str:
    from dreamfx import Chain
    rows = ["| preset | what it does | model | dream | chain | latency at 48 kHz |", "|---|---|---|---|---|---|"]
    for name in preset_names():
        try:
            preset = load_preset(name)
            chain = Chain.from_preset(preset, **preset.example_overrides())
            latency = f"{chain.latency_samples(48000) / 48:.0f} ms"
        except DreamfxError as exc:  # e.g. an LV2 plugin not installed where the site is built
            rows.append(f"| `{name}` | (cannot be loaded here: {cell(exc)}) | | | | |")
            continue
        rows.append(f"| `{name}` | {cell(preset.description)} | {preset.dream.get('model', 'default')} | "
                    f"{cell(dream_summary(preset))} | {cell(chain_summary(preset))} | {latency} |")
    return "\n".join(rows)


def midi_table() -> str:
    rows = ["| preset | controllers (CC = parameter) | notes choose the target | program change n → |",
            "|---|---|---|---|"]
    for name in preset_names():
        try:
            midi = load_preset(name).midi_map()
        except DreamfxError:
            midi = MidiMap()
        controllers = ", ".join(f"{number} = {parameter}" for number, parameter in sorted(midi.cc.items()))
        programs = ", ".join(f"{n}: {p}" for n, p in enumerate(midi.programs)) or "the shipped presets, sorted"
        rows.append(f"| `{name}` | {cell(controllers)} | {'yes' if midi.notes else 'no'} | {cell(programs)} |")
    return "\n".join(rows)


def models_table() -> str:
    from dreamfx.engine.backends import read_model_metadata
    rows = ["| model | task | classes | learned from | licence |", "|---|---|---|---|---|"]
    for name in SHIPPED_MODELS:
        meta = read_model_metadata(model_path(name))
        training = meta.get("training", {})
        source = training.get("data") or (f"{training['clips']} clips" if "clips" in training else "")
        licence = meta.get("licence", "MIT (this project)").splitlines()[0]
        rows.append(f"| `{name}` | {meta.get('task', 'genres')} | {len(meta['classes'])} | {cell(source)} | "
                    f"{cell(licence)} |")
    return "\n".join(rows)


def benchmarks() -> str:
    """BENCHMARKS.md under the page's heading; its links into the repository become the paths they name."""
    text = (ROOT / "BENCHMARKS.md").read_text().replace("# Benchmarks", "", 1).replace("\n## ", "\n### ")
    return re.sub(r"\[([^\]]+)\]\((?!https?:)([^)]+)\)", r"`\2`", text)


GENERATED = {"<!-- presets-table -->": presets_table, "<!-- midi-table -->": midi_table,
             "<!-- models-table -->": models_table, "<!-- benchmarks -->": benchmarks}


def on_page_markdown(markdown: str, **_) -> str:
    for marker, make in GENERATED.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
