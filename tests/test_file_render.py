"""Files rendered in blocks (dreamfx.render.file): equal to the in-memory render, flat in memory, never partial."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pedalboard
import pytest

from dreamfx.audio_io import read_audio, write_audio
from dreamfx.plugin.chain import Chain
from dreamfx.plugin.effect import DreamEffect
from dreamfx.errors import DreamfxError
from dreamfx.render.file import render_file
from dreamfx.nets.models import example_clip_path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """The example clip's first 6 s, as a 32-bit float WAV (so reading it back is exact)."""
    audio, sr = read_audio(example_clip_path(), seconds=6.0)
    path = tmp_path_factory.mktemp("clip") / "clip.wav"
    write_audio(path, audio, sr)
    return path, audio, sr


@pytest.mark.parametrize("make_chain", [
    lambda: Chain.from_preset("default"),
    lambda: Chain([pedalboard.Reverb(room_size=0.6), DreamEffect(intensity=0.7, iterations=2),
                   pedalboard.Compressor(threshold_db=-20, ratio=4), DreamEffect(intensity=0.5, iterations=1,
                                                                                layer="conv2"), pedalboard.Limiter()]),
], ids=["default preset", "Reverb + dream + Compressor + dream + Limiter"])
@pytest.mark.parametrize("block_size", [65536, 10000, 4096])
def test_a_file_rendered_in_blocks_equals_the_in_memory_render(clip, tmp_path, make_chain, block_size, measured):
    path, audio, sr = clip
    in_memory = make_chain()(audio, sr)
    done = []
    render_file(make_chain(), path, tmp_path / "out.wav", block_size=block_size, progress=done.append)
    blocks, rate = read_audio(tmp_path / "out.wav")
    difference = float(np.abs(blocks - in_memory).max())
    measured(f"file rendered in {block_size}-sample blocks vs in memory: max difference {difference:.1e}")
    assert rate == sr and blocks.shape == audio.shape and done[-1] == audio.shape[1]
    assert np.abs(in_memory - audio).max() > 0.01  # it dreamt: the comparison is not of two copies of the input
    assert difference <= 1e-6


def test_a_bad_input_leaves_no_output(tmp_path):
    bad = np.zeros((2, 200_000), np.float32)
    bad[0, 150_000] = np.nan  # in the third block: after output has been written
    path = tmp_path / "bad.wav"
    from pedalboard.io import AudioFile
    with AudioFile(str(path), "w", 44100, 2, bit_depth=32) as f:
        f.write(bad)
    with pytest.raises(DreamfxError, match=r"bad.wav contains NaN/Inf \(first at sample 150000, channel 0\)"):
        render_file(Chain([DreamEffect(intensity=0.5, iterations=1)]), path, tmp_path / "out.wav", block_size=65536)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.wav"]


PEAK = """
import re, sys, numpy as np
from pedalboard.io import AudioFile
from dreamfx.plugin.chain import Chain
from dreamfx.plugin.effect import DreamEffect
from dreamfx.render.file import render_file
def kilobytes(key):
    return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read())[1])
seconds, source, destination = float(sys.argv[1]), sys.argv[2], sys.argv[3]
noise = np.random.default_rng(0).uniform(-0.3, 0.3, (2, 44100 * 10)).astype(np.float32)
with AudioFile(source, "w", 44100, 2, bit_depth=16) as f:  # written in 10 s pieces: no whole file in memory
    for _ in range(int(seconds // 10)):
        f.write(noise)
chain = Chain([DreamEffect(intensity=0.5, iterations=1)])
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak (VmHWM) starts again from what is resident now
before = kilobytes("VmRSS")
render_file(chain, source, destination)
print(kilobytes("VmHWM") - before)
"""
GROWTH_MB_PER_MINUTE = 4.0  # a minute of the file held whole: 5 MB as 16-bit samples, 21 MB as float32


def test_peak_memory_does_not_grow_with_the_length(tmp_path, measured):
    """What a render adds to the memory at its peak (a fresh process, 1 iteration) is the same for a 3-minute
    file as for a 1-minute one: the file is never held whole, not even as 16-bit samples."""
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("measures the peak with Linux's /proc/self/clear_refs, which this system does not offer")
    added = {}
    for minutes in (1, 3):
        result = subprocess.run([sys.executable, "-c", PEAK, str(60 * minutes), str(tmp_path / f"{minutes}.flac"),
                                 str(tmp_path / f"{minutes}-out.flac")], capture_output=True, text=True, check=True)
        added[minutes] = int(result.stdout) / 1024  # MB
        assert read_audio(tmp_path / f"{minutes}-out.flac", seconds=1)[0].shape == (2, 44100)
    measured(f"memory a render in blocks adds at its peak: 1 min {added[1]:.1f} MB, 3 min {added[3]:.1f} MB")
    assert (added[3] - added[1]) / 2 <= GROWTH_MB_PER_MINUTE, added
