"""dreamfx: a DeepDream audio effect with pedalboard's calling convention.

    from dreamfx import DreamEffect, Chain
    from pedalboard import Reverb
    chain = Chain([DreamEffect(intensity=0.7), Reverb()])
    wet = chain(audio, sample_rate)
    render_file(chain, "song.wav", "song-dreamed.wav")   # in blocks: any length, flat memory

The package in layers, each importing only those below it (the contract in pyproject.toml, checked by
tests/test_layers.py):

    cli                 the command line: parses, calls the layers below, prints
    validate            the plugin validator's battery, and the measures it uses (metrics)
    render | live       files, folders, clusters, gallery | the live instrument (stream, worker, MIDI ports)
    recipe              a preset and its overrides -> a chain (one place)
    plugin              DreamEffect, Chain, presets (plain data), MIDI control
    export              graphs of networks and dream steps (TorchScript, ONNX), made on demand
    engine              backends that run dream steps; the streaming STFT -> dream -> overlap-add engine
    dream               objectives, transforms, the iterations, the dream step as a graph
    nets                the networks, their smooth gradients, the shipped models by name
    dsp                 STFT, ring buffers, frontends, fixed blocks
    audio_io, files, errors

The names below load on first use, so importing one layer (``from dreamfx.dsp.spectral import stft``) does not
import the whole host.
"""

from __future__ import annotations

import importlib

__all__ = ["Chain", "DreamEffect", "DreamfxError", "load_model", "load_preset", "render_file"]
__version__ = "0.1.0"

_PUBLIC = {"Chain": "dreamfx.plugin.chain", "DreamEffect": "dreamfx.plugin.effect", "DreamfxError": "dreamfx.errors",
           "load_model": "dreamfx.nets.models", "load_preset": "dreamfx.plugin.presets",
           "render_file": "dreamfx.render.file"}


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'dreamfx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
