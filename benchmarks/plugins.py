"""Hosted LV2 plugins: what hosting costs, side by side in one run.

Prints, on the bundled example clip (stereo, 44.1 kHz):

* each plugin's real-time factor through dreamfx (a chain of the plugin alone, pieces of 256 frames), the same
  plugin through lilv's own ``lv2apply`` (a whole process, frame by frame, file in and out), and a pedalboard
  built-in of the same kind, with their ratios;
* the trial run in a child process that guards against plugins that crash (once per plugin, controls and
  process), in seconds;
* what hosting every block in a child process would add, the containment dreamfx does not use: a pipe round
  trip of one piece (the audio there and back, the child copying it), per piece and as a real-time factor.

    python benchmarks/plugins.py [--repeats 3]
"""

from __future__ import annotations

import multiprocessing
import subprocess
import tempfile
import time
from pathlib import Path

import click
import numpy as np
import pedalboard
from common import best_time, machine

from dreamfx import Chain
from dreamfx.audio_io import read_audio, write_audio
from dreamfx.nets.models import example_clip_path
from dreamfx.plugin import lv2
from dreamfx.plugin.chain import PLUGIN_BLOCK

PLUGINS = [  # (URI, controls, a pedalboard built-in of the same kind)
    ("http://drobilla.net/plugins/mda/Overdrive", {"drive": 0.6}, pedalboard.Distortion(drive_db=20.0)),
    ("http://plugin.org.uk/swh-plugins/gverb", {"roomsize": 40.0}, pedalboard.Reverb()),
    ("http://invadarecords.com/plugins/lv2/compressor/stereo", {"threshold": -18.0, "ratio": 6.0},
     pedalboard.Compressor(threshold_db=-18.0, ratio=6.0)),
    ("urn:dragonfly:room", {}, pedalboard.Reverb()),
    ("http://guitarix.sourceforge.net/plugins/gx_amp#GUITARIX", {"Drive": 0.35}, pedalboard.Distortion()),
]


def echo(connection) -> None:
    """A child that sends every block it receives back (a copy each way, as an out-of-process host would)."""
    while (block := connection.recv_bytes()) != b"":
        connection.send_bytes(block)


def round_trip_seconds(piece: int, channels: int, blocks: int = 2000) -> float:
    """Mean seconds to send a (channels, piece) float32 block to a child process and get it back."""
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.Process(target=echo, args=(theirs,))
    child.start()
    block = np.zeros((channels, piece), np.float32).tobytes()
    started = time.perf_counter()
    for _ in range(blocks):
        ours.send_bytes(block)
        ours.recv_bytes()
    seconds = (time.perf_counter() - started) / blocks
    ours.send_bytes(b"")
    child.join()
    return seconds


@click.command()
@click.option("--repeats", default=3, show_default=True, help="Best of this many runs.")
def main(repeats: int) -> None:
    audio, sr = read_audio(example_clip_path())
    seconds = audio.shape[1] / sr
    print(machine())
    print(f"clip: {example_clip_path().name}, {seconds:.1f} s, {audio.shape[0]} ch, {sr} Hz; chain pieces "
          f"{PLUGIN_BLOCK} frames")
    print("| plugin | dreamfx RTF | lv2apply RTF (process, frame by frame) | lv2apply / dreamfx | pedalboard "
          "built-in RTF | dreamfx / built-in | trial run (s) |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.wav"
        write_audio(source, audio, sr)
        for uri, controls, builtin in PLUGINS:
            lv2.trial_run.cache_clear()
            started = time.perf_counter()
            lv2.trial_run(uri, tuple(sorted({**lv2.LV2Plugin(uri).parameters, **controls}.items())))
            trial = time.perf_counter() - started
            chain = Chain([lv2.LV2Plugin(uri, **controls)])
            hosted = best_time(lambda: chain(audio, sr), repeats)
            command = ["lv2apply", "-i", str(source), "-o", str(Path(folder) / "out.wav"),
                       *(a for symbol, value in controls.items() for a in ("-c", symbol, str(value))), uri]
            refused = subprocess.run(command, capture_output=True, text=True).returncode != 0
            reference = None if refused else best_time(lambda: subprocess.run(command, capture_output=True), repeats)
            native = best_time(lambda: builtin(audio, sr), repeats)
            apply = "refused (its ports or features)" if refused else f"{reference / seconds:.4f}"
            ratio = "-" if refused else f"{reference / hosted:.1f}"
            print(f"| {uri} | {hosted / seconds:.4f} | {apply} | {ratio} | {native / seconds:.4f} | "
                  f"{hosted / native:.1f} | {trial:.2f} |")
    for piece in (PLUGIN_BLOCK, 1114, 4096):
        trip = round_trip_seconds(piece, audio.shape[0])
        print(f"a child process per plugin (not used): {trip * 1e6:.0f} us per round trip of {piece} frames, "
              f"real-time factor {trip * sr / piece:.4f} per hosted stage")


if __name__ == "__main__":
    main()
