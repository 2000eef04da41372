"""Chain: a list of DreamEffects, native pedalboard plugins and hosted plugins (LV2 through
:mod:`dreamfx.plugin.lv2`, VST3 through pedalboard), called like a Pedalboard.

``pedalboard.Pedalboard`` only holds native plugins, so dreamfx brings its own
list with the same surface: build and edit it like a list, call it like a
plugin.  An LV2 stage's reported latency counts in the chain's like a dream's.  With ``reset=False``
(streaming) the output is delayed by :meth:`Chain.latency_samples`; with ``reset=True`` (offline) the chain streams
the input and ``latency`` samples of silence from a reset state and drops the
first ``latency`` samples (a host's delay compensation), so the offline render
is the streaming output advanced by the latency, sample for sample, whatever
the stages (a Chorus's LFO runs from the reset in both).

Whatever blocks the caller or host sends, a chain that holds pedalboard (or hosted) plugins runs
its stages on whole pieces of one size through one :class:`~dreamfx.dsp.fixed_blocks.FixedBlocks`
FIFO: pedalboard's plugins give another output when the blocks vary in size (Chorus,
Delay, Reverb up to 0.36 apart, measured), and behind the FIFO they see the same pieces
in every render, streamed or offline, live or from a file.  The piece is the first
dream's chunk, and that dream, fed whole chunks, skips its own wait for one (the FIFO's
``chunk - 1`` samples replace it), so the FIFO adds no latency; a chain without a dream
uses pieces of :data:`PLUGIN_BLOCK` (``PLUGIN_BLOCK - 1`` samples of latency).  A chain
of dreams alone needs no FIFO: the dream is independent of the block size by
construction.  The live worker, which feeds whole chunks, calls
:meth:`Chain.take_whole_chunks`: the FIFO then passes them on at once.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pedalboard

from dreamfx.audio_io import check_finite, to_channels_first
from dreamfx.plugin.effect import DreamEffect
from dreamfx.errors import DreamfxError
from dreamfx.dsp.fixed_blocks import FixedBlocks
from dreamfx.plugin.hosted import external_prefix
from dreamfx.plugin.lv2 import LV2Plugin
from dreamfx.plugin.presets import (LV2_STATE_KEY, NATIVE_PLUGINS, MidiMap, Preset, load_preset, plugin_parameters,
                                    save_preset)

# Samples per piece of a chain of pedalboard plugins without a dream (5.3 ms at 48 kHz of latency).  A plugin
# given k whole pieces in one call with buffer_size = the piece renders as k calls of one piece, bit for bit
# (measured: Chorus, Delay, Reverb, Phaser, Compressor, Limiter).
PLUGIN_BLOCK = 256
FLOAT32_TINY = np.finfo(np.float32).tiny


def _check_plugin(plugin) -> object:
    if not isinstance(plugin, (pedalboard.Plugin, LV2Plugin, DreamEffect)):
        raise DreamfxError(f"a Chain holds pedalboard plugins, LV2Plugins and DreamEffects, not "
                           f"{type(plugin).__name__}: e.g. Chain([pedalboard.Reverb(), DreamEffect()])")
    return plugin


def stage_record(plugin) -> dict:
    """A chain stage as a preset's [[chain]] entry: its kind and its parameters."""
    if isinstance(plugin, DreamEffect):
        return {"plugin": "dream"}
    if isinstance(plugin, LV2Plugin):
        state = plugin.state
        return {"plugin": f"lv2:{plugin.uri}", **plugin.parameters, **({LV2_STATE_KEY: state} if state else {})}
    if type(plugin).__name__ in NATIVE_PLUGINS:
        return {"plugin": type(plugin).__name__, **plugin_parameters(plugin)}
    prefix = external_prefix(plugin)
    if prefix is None:
        raise DreamfxError(f"{type(plugin).__name__} cannot be saved in a preset: presets hold the dream, "
                           f"{', '.join(NATIVE_PLUGINS)}, LV2, VST3 and Audio Unit plugins")
    return {"plugin": f"{prefix}{plugin.path_to_plugin_file}",
            **{k: float(getattr(plugin, k)) for k in plugin.parameters if isinstance(getattr(plugin, k), (int, float))}}


class Chain(list):
    """Effects applied in order: ``Chain([Reverb(), DreamEffect(), Compressor()])(audio, sr)``."""

    is_effect = True
    is_instrument = False

    def __init__(self, plugins: Iterable = ()):
        super().__init__(_check_plugin(p) for p in plugins)
        # Channels of the last streaming block: a (2, 1) block is read as 2 channels after a stereo stream, as
        # pedalboard does (a fresh chain reads it as one channel of 2 samples).
        object.__setattr__(self, "_stream_channels", None)
        object.__setattr__(self, "_plugin_blocks", FixedBlocks(PLUGIN_BLOCK))

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
    def from_preset(cls, preset: str | Path | Preset, **overrides) -> Chain:
        """The whole chain of a preset (a name in presets/, a .toml path, or a loaded Preset); ``overrides`` set
        dream parameters (see :meth:`DreamEffect.from_preset`)."""
        preset = preset if isinstance(preset, Preset) else load_preset(preset)
        return cls(DreamEffect.from_preset(preset, **overrides) if stage["plugin"] == "dream" else
                   preset.stage_plugin(i, stage) for i, stage in enumerate(preset.chain))

    def to_preset(self, name: str, description: str = "", midi: MidiMap | None = None) -> Preset:
        """The preset that builds this chain again, with its current parameters."""
        if len(self.dream_effects) != 1:
            raise DreamfxError(f"a preset holds exactly one DreamEffect; this chain has {len(self.dream_effects)}")
        stages = [stage_record(p) for p in self]
        return Preset(name, description, None, self.dream_effects[0].parameters(), midi, stages)

    def save_preset(self, path, name: str, description: str = "", midi: MidiMap | None = None) -> None:
        """Write this chain, with its current parameters, as a preset file (.toml) that builds it again."""
        save_preset(self.to_preset(name, description, midi), path)

    @property
    def dream_effects(self) -> list[DreamEffect]:
        return [p for p in self if isinstance(p, DreamEffect)]

    @property
    def hosted_plugins(self) -> list:
        """The chain's plugins other than dreams: pedalboard's, LV2, VST3 (they run behind the fixed-block FIFO)."""
        return [p for p in self if not isinstance(p, DreamEffect)]

    def piece_samples(self, sample_rate: float) -> int:
        """The pieces the stages get behind the FIFO: the first dream's chunk, or :data:`PLUGIN_BLOCK`."""
        dreams = self.dream_effects
        return dreams[0].chunk_samples(sample_rate) if dreams else PLUGIN_BLOCK

    def latency_samples(self, sample_rate: float) -> int:
        """Total streaming delay at ``sample_rate``: the dream stages' and LV2 plugins' latencies (the FIFO's
        ``chunk - 1`` stands in for the first dream's own wait), plus ``PLUGIN_BLOCK - 1`` for plugins without a
        dream.  After :meth:`take_whole_chunks` the output comes ``chunk - 1`` samples sooner than this."""
        dreams = self.dream_effects
        fifo = PLUGIN_BLOCK - 1 if self.hosted_plugins and not dreams else 0
        return fifo + sum(p.latency_samples(sample_rate) for p in self if isinstance(p, (DreamEffect, LV2Plugin)))

    def check_rate(self, sample_rate: float) -> None:
        """One line for a stage that cannot run at ``sample_rate``: pedalboard's high- and low-pass filters put
        out inf when their cutoff is above half the sample rate."""
        for index, plugin in enumerate(self):
            if isinstance(plugin, (pedalboard.HighpassFilter, pedalboard.LowpassFilter)) \
                    and plugin.cutoff_frequency_hz > sample_rate / 2:
                raise DreamfxError(f"chain[{index}]: {type(plugin).__name__} cutoff_frequency_hz = "
                                   f"{plugin.cutoff_frequency_hz:g} is above half the sample rate ({sample_rate / 2:g} "
                                   "Hz), where the filter blows up: lower it, or give audio of a higher sample rate")

    def take_whole_chunks(self, sample_rate: float, channels: int) -> None:
        """From now until the next reset, accept only whole chunks of the first dream (from a chunk boundary) and
        drop the wait for one: the latency shrinks by ``chunk - 1`` samples.  For a caller that already waits
        for whole chunks (the live worker).  Call right after :meth:`reset`."""
        if not self.dream_effects:
            raise DreamfxError("take_whole_chunks needs a dream in the chain: its chunk is the unit")
        self._plugin_blocks.resize(self.piece_samples(sample_rate))
        self._first_dream_on_whole_chunks(sample_rate, channels)
        if self.hosted_plugins:
            self._plugin_blocks.take_whole_pieces()

    def process(self, input_array: np.ndarray, sample_rate: float, buffer_size: int = 8192, reset: bool = True,
                progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Run audio through every stage; same layout and length as the input.

        ``buffer_size`` is passed to the dream stages (pedalboard plugins get the FIFO's piece as theirs);
        ``progress`` too (called with samples done).
        """
        audio, restore = to_channels_first(input_array, None if reset else self._stream_channels)
        check_finite(audio, "input audio")
        self.check_rate(sample_rate)  # every call: a control set from Python mid-stream is checked too
        object.__setattr__(self, "_stream_channels", audio.shape[0])
        latency = self.latency_samples(sample_rate) if reset else 0
        if reset:
            self.reset()
            audio = np.pad(audio, ((0, 0), (0, latency)))
        stages = functools.partial(self._stages, sample_rate=sample_rate, buffer_size=buffer_size, progress=progress)
        if self.hosted_plugins and audio.shape[1]:
            if not self._plugin_blocks.whole_pieces:
                self._plugin_blocks.resize(self.piece_samples(sample_rate))
                self._first_dream_on_whole_chunks(sample_rate, audio.shape[0])
            audio = self._plugin_blocks(audio, stages)
        else:
            audio = stages(audio)
        subnormal = (np.abs(audio) < FLOAT32_TINY) & (audio != 0)  # IIR tails decaying to nothing: they cost CPU
        return restore(np.where(subnormal, np.float32(0), audio)[:, latency:] if subnormal.any() else audio[:, latency:])

    __call__ = process

    def _first_dream_on_whole_chunks(self, sample_rate: float, channels: int) -> None:
        """The first dream gets whole chunks (behind the FIFO, or from the live worker): unless it already takes
        them, its stream starts here (as the FIFO's does) without its own wait for a chunk."""
        dreams = self.dream_effects
        if dreams:
            engine = dreams[0].engine(sample_rate, channels)
            if not engine.whole_chunks:
                engine.reset()
                engine.take_whole_chunks()

    def _stages(self, audio: np.ndarray, sample_rate: float, buffer_size: int,
                progress: Callable[[int], None] | None) -> np.ndarray:
        """audio (channels, n) through every stage in order, streaming."""
        for plugin in self:
            if isinstance(plugin, DreamEffect):
                audio = plugin.process(audio, sample_rate, buffer_size=buffer_size, reset=False, progress=progress)
            else:
                audio = plugin.process(audio, sample_rate, buffer_size=self._plugin_blocks.size, reset=False)
        return audio

    def reset(self) -> None:
        self._plugin_blocks.reset()
        for plugin in self:
            plugin.reset()

    def __repr__(self) -> str:
        return f"<dreamfx.Chain with {len(self)} plugins: {list.__repr__(self)}>"
