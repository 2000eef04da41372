"""dreamfx: a DeepDream audio effect with pedalboard's calling convention.

    from dreamfx import DreamEffect, Chain
    from pedalboard import Reverb
    chain = Chain([DreamEffect(intensity=0.7), Reverb()])
    wet = chain(audio, sample_rate)
    render_file(chain, "song.wav", "song-dreamed.wav")   # in blocks: any length, flat memory
"""

from dreamfx.chain import Chain
from dreamfx.effect import DreamEffect
from dreamfx.errors import DreamfxError
from dreamfx.file_render import render_file
from dreamfx.models import load_model
from dreamfx.presets import load_preset

__all__ = ["Chain", "DreamEffect", "DreamfxError", "load_model", "load_preset", "render_file"]
__version__ = "0.1.0"
