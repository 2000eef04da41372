"""The documentation site's "listen" page, made from the project's own renders.

Renders the bundled example clip and the two bundled real recordings (Muldjord's "Mutilated Mime", CC BY-SA 3.0;
Warzone 2100's menu music, GPL-2+: presets/guides/) through a few presets, and writes

    docs/listen/<clip>-<preset>.ogg     each render (and <clip>-input.ogg, the clip itself), Ogg Vorbis 128 kbps
    docs/listen/<clip>-<preset>.png     before/after spectrograms
    docs/listen.md                      the page: a player and the spectrograms for each

    python scripts/listen_page.py [--seconds 8]
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dreamfx import Chain  # noqa: E402
from pedalboard.io import AudioFile  # noqa: E402

from dreamfx.audio_io import read_audio  # noqa: E402
from dreamfx.nets.models import example_clip_path  # noqa: E402
from dreamfx.plugin.presets import PRESET_DIR, load_preset  # noqa: E402
from dreamfx.render.figures import before_after_figure  # noqa: E402

CLIPS = {  # name -> (file, start second, what it is)
    "example": (example_clip_path(), 0.0, "the bundled example clip (made here)"),
    "metal": (PRESET_DIR / "guides" / "muldjord-mutilated-mime.ogg", 4.0,
              "Muldjord, \"Mutilated Mime\" (Debian's fretsonfire-songs-muldjord; CC BY-SA 3.0, text in "
              "presets/guides/: these renders of it are CC BY-SA 3.0 too)"),
    "orchestral": (PRESET_DIR / "guides" / "warzone2100-menu.ogg", 4.0,
                   "Warzone 2100's menu music (Debian's warzone2100-music; GPL-2+, text in presets/guides/)"),
}
PRESETS = ["default", "msd-jazz", "mtt-piano", "metal-amp"]
QUALITY = "128 kbps"  # Ogg Vorbis: the page's players stream these from the site


def write_ogg(path: Path, audio, sample_rate: int) -> None:
    with AudioFile(str(path), "w", sample_rate, audio.shape[0], quality=QUALITY) as f:
        f.write(audio.clip(-1.0, 1.0))


@click.command()
@click.option("--seconds", default=8.0, show_default=True, help="Length of each clip's excerpt.")
def main(seconds: float) -> None:
    out = ROOT / "docs" / "listen"
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Listen", "",
             "Real recordings and the bundled example through a few presets, rendered by `scripts/listen_page.py` "
             f"({seconds:g} s excerpts, as `dreamfx process` renders them); each player is followed by the "
             "spectrograms before and after. Every preset is on the [Presets](presets.md) page; `dreamfx gallery` "
             "makes the same page for any clip and every preset.", ""]
    for clip, (path, start, credit) in CLIPS.items():
        audio, sr = read_audio(path)
        audio = audio[:, int(start * sr):int((start + seconds) * sr)]
        write_ogg(out / f"{clip}-input.ogg", audio, sr)
        lines += [f"## {clip.capitalize()}", "", f"{credit[0].upper()}{credit[1:]}.", "", "The input:", "",
                  f'<audio controls preload="metadata" src="../listen/{clip}-input.ogg"></audio>', ""]
        for name in PRESETS:
            preset = load_preset(name)
            print(f"{clip} through {name}", flush=True)
            wet = Chain.from_preset(preset, **preset.example_overrides())(audio, sr)
            write_ogg(out / f"{clip}-{name}.ogg", wet, sr)
            before_after_figure(audio, wet, sr, out / f"{clip}-{name}.png", f"{clip} through {name}")
            lines += [f"### {name}", "", preset.description, "",
                      f'<audio controls preload="metadata" src="../listen/{clip}-{name}.ogg"></audio>', "",
                      f"![{clip} through {name}: spectrograms before and after](listen/{clip}-{name}.png)", ""]
    (ROOT / "docs" / "listen.md").write_text("\n".join(lines))
    print(f"wrote {ROOT / 'docs' / 'listen.md'} and {len(list(out.iterdir()))} files in {out}")


if __name__ == "__main__":
    main()
