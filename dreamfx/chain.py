"""Chain: a list of native pedalboard plugins and DreamEffects, called like a Pedalboard.

``pedalboard.Pedalboard`` only holds native plugins, so dreamfx brings its own
list with the same surface: build and edit it like a list, call it like a
plugin.  With ``reset=False`` (streaming) the output is delayed by
:meth:`Chain.latency_samples`; with ``reset=True`` (offline) the chain streams
the input and ``latency`` samples of silence from a reset state and drops the
first ``latency`` samples (a host's delay compensation), so the offline render
is the streaming output advanced by the latency, sample for sample, whatever
the stages (a Chorus's LFO runs from the reset in both).
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import pedalboard

from dreamfx.effect import DreamEffect, check_finite, to_channels_first
from dreamfx.errors import DreamfxError

FLOAT32_TINY = np.finfo(np.float32).tiny


def _check_plugin(plugin) -> object:
    if not isinstance(plugin, (pedalboard.Plugin, DreamEffect)):
        raise DreamfxError(f"a Chain holds pedalboard plugins and DreamEffects, not {type(plugin).__name__}: "
                           "e.g. Chain([pedalboard.Reverb(), DreamEffect()])")
    return plugin


class Chain(list):
    """Effects applied in order: ``Chain([Reverb(), DreamEffect(), Compressor()])(audio, sr)``."""

    is_effect = True
    is_instrument = False

    def __init__(self, plugins: Iterable = ()):
        super().__init__(_check_plugin(p) for p in plugins)
        # Channels of the last streaming block: a (2, 1) block is read as 2 channels after a stereo stream, as
        # pedalboard does (a fresh chain reads it as one channel of 2 samples).
        object.__setattr__(self, "_stream_channels", None)

    def __setattr__(self, name: str, value) -> None:
        raise DreamfxError(f"a Chain has no parameter {name!r}: set parameters on its plugins, e.g. "
                           "chain[0].intensity = 0.5")

    def append(self, plugin) -> None:
        super().append(_check_plugin(plugin))

    def insert(self, index: int, plugin) -> None:
        super().insert(index, _check_plugin(plugin))

    def extend(self, plugins: Iterable) -> None:
        super().extend(_check_plugin(p) for p in plugins)

    def __setitem__(self, index, value) -> None:
        if isinstance(index, slice):
            value = [_check_plugin(p) for p in value]
        else:
            _check_plugin(value)
        super().__setitem__(index, value)

    @classmethod
    def from_preset(cls, preset, **overrides) -> Chain:
        """The chain of a preset (a name in presets/ or a .toml path); ``overrides`` set dream parameters."""
        from dreamfx.presets import load_preset
        return load_preset(preset).build_chain(**overrides)

    def save_preset(self, path, name: str, description: str = "", midi=None) -> None:
        """Write this chain, with its current parameters, as a preset file (.toml) that builds it again."""
        from dreamfx.presets import Preset, save_preset
        save_preset(Preset.from_chain(self, name, description, midi), path)

    @property
    def dream_effects(self) -> list[DreamEffect]:
        return [p for p in self if isinstance(p, DreamEffect)]

    def latency_samples(self, sample_rate: float) -> int:
        """Total streaming delay at ``sample_rate``: the sum of the dream stages' latencies."""
        return sum(p.latency_samples(sample_rate) for p in self.dream_effects)

    def process(self, input_array: np.ndarray, sample_rate: float, buffer_size: int = 8192, reset: bool = True,
                progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Run audio through every stage; same layout and length as the input.

        ``progress`` is passed to the dream stages (called with samples done).
        """
        audio, restore = to_channels_first(input_array, None if reset else self._stream_channels)
        check_finite(audio, "input audio")
        object.__setattr__(self, "_stream_channels", audio.shape[0])
        latency = self.latency_samples(sample_rate) if reset else 0
        if reset:
            self.reset()
            audio = np.pad(audio, ((0, 0), (0, latency)))
        for plugin in self:
            if isinstance(plugin, DreamEffect):
                audio = plugin.process(audio, sample_rate, buffer_size=buffer_size, reset=False, progress=progress)
            else:
                audio = plugin.process(audio, sample_rate, buffer_size=buffer_size, reset=False)
        subnormal = (np.abs(audio) < FLOAT32_TINY) & (audio != 0)  # IIR tails decaying to nothing: they cost CPU
        return restore(np.where(subnormal, np.float32(0), audio)[:, latency:] if subnormal.any() else audio[:, latency:])

    __call__ = process

    def reset(self) -> None:
        for plugin in self:
            plugin.reset()

    def __repr__(self) -> str:
        return f"<dreamfx.Chain with {len(self)} plugins: {list.__repr__(self)}>"
