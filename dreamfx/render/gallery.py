"""The preset gallery: one clip rendered through every preset, on an HTML page to listen and compare.

    DIR/index.html              players and figures, one card per preset
    DIR/audio/<name>.flac       the clip through that preset (input.flac: the clip itself)
    DIR/figures/<name>.png      before/after spectrograms

All links are relative, so the folder can be moved or served as it is.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dreamfx.audio_io import write_audio
from dreamfx.render.figures import before_after_figure
from dreamfx.files import atomic_path
from dreamfx.plugin.chain import Chain
from dreamfx.plugin.presets import Preset


@dataclass
class GalleryEntry:
    preset: Preset
    audio: str      # relative path of the rendered audio
    figure: str     # relative path of the spectrogram figure
    peak_db: float  # peak level of the render, dBFS


def render_gallery(presets: list[Preset], audio: np.ndarray, sample_rate: int, out_dir: Path, clip_name: str,
                   progress: Callable[[str], None] = lambda name: None) -> Path:
    """Render ``audio`` (channels, samples) through each preset into ``out_dir``; returns index.html's path."""
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    (out_dir / "figures").mkdir(exist_ok=True)
    write_audio(out_dir / "audio" / "input.flac", audio, sample_rate, bit_depth=24)
    entries = []
    for preset in presets:
        progress(preset.name)
        wet = Chain.from_preset(preset, **preset.example_overrides())(audio, sample_rate)
        write_audio(out_dir / "audio" / f"{preset.name}.flac", wet, sample_rate, bit_depth=24)
        before_after_figure(audio, wet, sample_rate, out_dir / "figures" / f"{preset.name}.png", preset.name)
        peak = float(np.abs(wet).max())
        entries.append(GalleryEntry(preset, f"audio/{preset.name}.flac", f"figures/{preset.name}.png",
                                    20 * np.log10(max(peak, 1e-9))))
    index = out_dir / "index.html"
    with atomic_path(index) as tmp:
        tmp.write_text(gallery_html(entries, clip_name, audio.shape[1] / sample_rate), encoding="utf-8")
    return index


def chain_summary(preset: Preset) -> str:
    return " → ".join("dream" if s["plugin"] == "dream" else s["plugin"] for s in preset.chain)


def dream_summary(preset: Preset) -> str:
    d = preset.dream
    if "targets" in d:
        aim = "toward " + " + ".join(f"{name} {weight:g}" for name, weight in d["targets"].items())
    elif "target" in d:
        aim = f"toward {d['target']}"
    elif "match" in d:
        guide = Path(d.get("guide") or preset.example_overrides()["guide"]).name
        aim = f"toward the guide {guide} ({d['match']} match)"
    elif "layers" in d:
        aim = " + ".join(f"{name} {weight:g}" for name, weight in d["layers"].items())
    else:
        aim = d.get("layer", "conv3") + (f" channel {d['channel']}" if "channel" in d else "") + (
            f" channels {', '.join(d['channels'])}" if "channels" in d else "")
    band = f", {d['band_hz'][0]:g}–{d['band_hz'][1]:g} Hz" if "band_hz" in d else ""
    return f"{aim}, intensity {d.get('intensity', 1.0):g}, {d.get('iterations', 8)} iterations{band}"


def gallery_html(entries: list[GalleryEntry], clip_name: str, seconds: float) -> str:
    """The page: the input's player, then one card per preset with its player and spectrograms."""
    e = html.escape
    cards = "\n".join(f"""<section class="card" id="{e(entry.preset.name)}">
  <h2>{e(entry.preset.name)}</h2>
  <p class="description">{e(entry.preset.description)}</p>
  <p class="details">{e(dream_summary(entry.preset))} · chain: {e(chain_summary(entry.preset))} · peak {entry.peak_db:.1f} dBFS</p>
  <audio controls preload="metadata" src="{e(entry.audio)}"></audio>
  <img src="{e(entry.figure)}" alt="spectrogram of {e(clip_name)} before and after {e(entry.preset.name)}" loading="eager">
</section>""" for entry in entries)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>dreamfx preset gallery</title>
<style>
  body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #222; }}
  .card {{ border: 1px solid #ddd; border-radius: 8px; padding: 1rem; margin: 1rem 0; }}
  .card h2 {{ margin: 0 0 .3rem; font-size: 1.2rem; }}
  .description {{ margin: 0 0 .3rem; }}
  .details {{ margin: 0 0 .6rem; color: #666; font-size: .85rem; }}
  audio {{ width: 100%; }}
  img {{ width: 100%; margin-top: .5rem; }}
</style>
</head>
<body>
<h1>dreamfx preset gallery</h1>
<p>{e(clip_name)} ({seconds:.1f} s) through each of {len(entries)} presets. The input:</p>
<audio controls preload="metadata" src="audio/input.flac"></audio>
{cards}
</body>
</html>
"""
