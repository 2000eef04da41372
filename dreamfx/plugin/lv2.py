"""Hosted LV2 plugins: :class:`LV2Plugin`, an installed plugin as a chain stage with pedalboard's calling
convention, over the lilv binding (:mod:`dreamfx.plugin.lilv`).

    audio (channels, n) float32
      -> instances (one for a plugin of as many audio ports as channels, one per channel for a mono plugin)
      -> runs on the chain's pieces (at most MAX_BLOCK frames each): channels copied into the input ports'
         buffers, run, output ports copied out
      -> (channels, n) float32, delayed by the plugin's reported latency (its latency port)

Control ports are set by symbol, like a pedalboard plugin's parameters (``plugin.drive = 0.5``), checked
against their ranges; output control ports are read the same way (``plugin.outputs``).  A plugin instance is
made at the first block of a sample rate and channel count, and made again by :meth:`LV2Plugin.reset`
(deactivate/activate does not clear every plugin's state): a reset plugin renders the same audio every time.
A fresh instance's first run is one frame long: plugins that glide from an internal start value to their controls
over a run (invada's) then start where lilv's own host (``lv2apply``, frame by frame) starts them, instead of
gliding across the first block.  The plugin's own state (LV2's state interface), where it has one, is saved and
restored as Turtle text (:attr:`LV2Plugin.state`).

Each plugin, with the controls and state it starts at, first gets a trial run on noise in a child process
(:func:`trial_run`): a plugin that crashes there is refused in one line instead of taking the host down.

Layer: below presets and the chain; imports dreamfx.plugin.lilv, dreamfx.audio_io and dreamfx.errors.
"""

from __future__ import annotations

import functools
import math
import os
import signal
import subprocess
import sys

import numpy as np

from dreamfx.audio_io import to_channels_first
from dreamfx.errors import DreamfxError
from dreamfx.plugin.lilv import MAX_BLOCK, Instance, plugin_info

TRIAL_SECONDS = 60.0  # the longest a plugin's trial run in a child process may take
TRIAL_CHILD = "DREAMFX_LV2_TRIAL"  # set in the child process that runs a trial


@functools.cache
def trial_run(uri: str, controls: tuple[tuple[str, float], ...] = (), state: str | None = None) -> None:
    """Run the plugin with ``controls`` ((symbol, value) pairs) and its own ``state`` restored on 1 s of noise in a
    child process (``python -m dreamfx.plugin.lv2 URI symbol=value ...``, the state on stdin) before this process
    hosts it: a plugin (or lilv reading a state) that crashes or hangs there gets one line instead of taking the
    host down.  Once per plugin, controls, state and process; what a plugin does later, on other controls (a MIDI
    controller's) or audio, is not contained."""
    if os.environ.get(TRIAL_CHILD):
        return
    try:
        child = subprocess.run([sys.executable, "-m", "dreamfx.plugin.lv2", uri,
                                *(f"{symbol}={value!r}" for symbol, value in controls)], input=state or "",
                               capture_output=True, text=True, timeout=TRIAL_SECONDS,
                               env={**os.environ, TRIAL_CHILD: "1"})
    except subprocess.TimeoutExpired:
        raise DreamfxError(f"LV2 plugin {uri} hung in a trial run (over {TRIAL_SECONDS:g} s on 1 s of noise in a "
                           "child process): dreamfx does not host it") from None
    if child.returncode < 0:
        raise DreamfxError(f"LV2 plugin {uri} crashed in a trial run in a child process "
                           f"({signal.Signals(-child.returncode).name}"
                           f"{', restoring its saved state' if state else ''}): dreamfx does not host it")
    if child.returncode != 0:
        lines = [line for line in child.stderr.splitlines() if line.strip()]
        raise DreamfxError(lines[-1] if lines else f"LV2 plugin {uri}: its trial run failed ({child.returncode})")


class LV2Plugin:
    """An installed LV2 plugin as a chain stage: ``LV2Plugin("http://drobilla.net/plugins/mda/Overdrive",
    drive=0.5)(audio, sample_rate)``; controls are attributes (``plugin.drive = 0.7``, by port symbol), checked
    against their ranges; ``lv2_state``: the plugin's own state to restore (see :attr:`state`).

    Audio ports by channel: a plugin with as many audio inputs and outputs as the audio has channels gets one
    channel per port; a mono plugin (1 in, 1 out) runs once per channel; a 1-in-2-out plugin takes the channels'
    mean (stereo audio gets both outputs, mono the outputs' mean); a 2-in-2-out plugin given mono gets it on both
    inputs, and the outputs' mean is returned.
    """

    is_effect = True
    is_instrument = False

    def __init__(self, uri: str, lv2_state: str | None = None, **controls):
        info = plugin_info(uri)
        if info.unsupported:
            raise DreamfxError(f"LV2 plugin {info.name} ({uri}) cannot be hosted by dreamfx: "
                               f"{'; '.join(info.unsupported)}")
        audio_in, audio_out = len(info.ports_of("audio", "in")), len(info.ports_of("audio", "out"))
        if (audio_in, audio_out) not in ((1, 1), (1, 2), (2, 2)):
            raise DreamfxError(f"LV2 plugin {info.name} ({uri}) has {audio_in} audio inputs and {audio_out} "
                               "outputs: dreamfx hosts effects of 1 in 1 out, 1 in 2 out or 2 in 2 out")
        object.__setattr__(self, "info", info)
        object.__setattr__(self, "_values", {s: p.initial for s, p in info.controls.items()})
        object.__setattr__(self, "_running", [])
        object.__setattr__(self, "_layout", None)  # (sample rate, channels) the instances were made for
        object.__setattr__(self, "_latency", {})  # (sample rate, controls, state) -> reported latency
        object.__setattr__(self, "_started", False)  # whether the instances have run
        object.__setattr__(self, "_state", None)  # the plugin's own state (Turtle) to restore in new instances
        for symbol, value in controls.items():
            setattr(self, symbol, value)
        trial_run(uri, tuple(sorted(self._values.items())), lv2_state)
        if lv2_state is not None:
            self.state = lv2_state

    @property
    def uri(self) -> str:
        return self.info.uri

    @property
    def parameters(self) -> dict[str, float]:
        """The control input ports' values by symbol (set them as attributes)."""
        return dict(self._values)

    @property
    def outputs(self) -> dict[str, float]:
        """The control output ports' values after the last block (the first instance's), by symbol."""
        running = self._running[0] if self._running else None
        return {p.symbol: float(running.values[p.index]) if running else math.nan
                for p in self.info.ports_of("control", "out")}

    def __getattr__(self, name: str):
        info = self.__dict__["info"]
        if name in info.controls:
            return self._values[name]
        if name in {p.symbol for p in info.ports_of("control", "out")}:
            return self.outputs[name]
        raise AttributeError(f"LV2 plugin {info.name} has no control {name!r}; its controls: "
                             f"{', '.join(info.controls) or 'none'}")

    @property
    def state(self) -> str | None:
        """The plugin's own state, beyond its controls (LV2's state interface: e.g. Dragonfly's chosen preset), as
        Turtle text; None when it keeps none.  Set it (``plugin.state = text``) to restore it: new instances
        start from it."""
        if self._running:
            return self._running[0].state()
        running = Instance(self.info, 48000.0, self._values, self._state)
        try:
            return running.state()
        finally:
            running.close()

    def __setattr__(self, name: str, value) -> None:
        if name == "state":
            if value is not None and not isinstance(value, str):
                raise DreamfxError(f"LV2 plugin {self.info.name}: its state is Turtle text, not {type(value).__name__}")
            trial_run(self.uri, tuple(sorted(self._values.items())), value)  # lilv crashes on some bad texts
            Instance(self.info, 48000.0, self._values, value).close()  # fails now on text lilv cannot read
            object.__setattr__(self, "_state", value)
            self.reset()
            return
        port = self.info.controls.get(name)
        if port is None:
            raise DreamfxError(f"LV2 plugin {self.info.name} ({self.uri}) has no control {name!r}; it takes "
                               f"{', '.join(self.info.controls) or 'no controls'}")
        self._values[name] = port.check(value, f"LV2 plugin {self.info.name}")
        for running in self._running:
            running.values[port.index] = self._values[name]

    def latency_samples(self, sample_rate: float) -> int:
        """The delay the plugin reports at ``sample_rate`` (its latency port after one empty run), in samples."""
        port = self.info.latency_port
        if port is None:
            return 0
        key = (sample_rate, tuple(self._values.items()), self._state)
        if key not in self._latency:
            running = Instance(self.info, sample_rate, self._values, self._state)
            try:
                running.run(0)
                self._latency[key] = max(0, round(running.values[port.index]))
            finally:
                running.close()
        return self._latency[key]

    def process(self, input_array: np.ndarray, sample_rate: float, buffer_size: int = MAX_BLOCK,
                reset: bool = True) -> np.ndarray:
        """Run audio (channels, samples) or (samples,) float32 through the plugin in pieces of at most
        ``buffer_size`` (and :data:`MAX_BLOCK`) frames; ``reset``: start from a fresh instance."""
        audio, restore = to_channels_first(input_array)
        if reset:
            self.reset()
        channels = audio.shape[0]
        if self._layout != (sample_rate, channels):
            self._start(sample_rate, channels)
        out = np.empty_like(audio)
        for start, end in self._runs(audio.shape[1], max(1, int(buffer_size))):
            out[:, start:end] = self._run(audio[:, start:end])
        object.__setattr__(self, "_started", self._started or audio.shape[1] > 0)
        if not np.isfinite(out).all():
            raise DreamfxError(f"LV2 plugin {self.info.name} ({self.uri}) produced NaN or Inf: check its controls "
                               f"({', '.join(f'{k}={v:g}' for k, v in self._values.items())})")
        return restore(out)

    __call__ = process

    def _runs(self, frames: int, block: int) -> list[tuple[int, int]]:
        """(start, end) of the runs over ``frames``: blocks of ``block`` (a chain's FIFO gives whole ones, so runs
        fall alike in every render), each cut into runs of at most MAX_BLOCK; a fresh instance's first run is one
        frame long (see the module docstring)."""
        runs = [(at, min(at + MAX_BLOCK, start + block, frames)) for start in range(0, frames, block)
                for at in range(start, min(start + block, frames), MAX_BLOCK)]
        if not self._started and runs:
            first_start, first_end = runs[0]
            runs[:1] = [(first_start, first_start + 1)] + ([(first_start + 1, first_end)] if first_end > 1 else [])
        return runs

    def _start(self, sample_rate: float, channels: int) -> None:
        self.reset()
        if channels > 2 and len(self.info.ports_of("audio", "in")) > 1:
            raise DreamfxError(f"LV2 plugin {self.info.name} ({self.uri}) is stereo: give it mono or stereo audio, "
                               f"not {channels} channels")
        per_channel = len(self.info.ports_of("audio", "in")) == len(self.info.ports_of("audio", "out")) == 1
        self._running.extend(Instance(self.info, sample_rate, self._values, self._state)
                             for _ in range(channels if per_channel else 1))
        object.__setattr__(self, "_layout", (sample_rate, channels))

    def _run(self, audio: np.ndarray) -> np.ndarray:
        """audio (channels, n <= MAX_BLOCK) through the instances."""
        channels, n = audio.shape
        if len(self._running) > 1:  # a mono plugin per channel
            results = []
            for running, channel in zip(self._running, audio):
                running.audio[running.inputs[0]][:n] = channel
                running.run(n)
                results.append(running.audio[running.outputs[0]][:n].copy())
            return np.stack(results)
        running = self._running[0]
        ins = audio if len(running.inputs) == channels else (audio.mean(axis=0, keepdims=True)
                                                             if len(running.inputs) == 1 else np.repeat(audio, 2, 0))
        for port, channel in zip(running.inputs, ins):
            running.audio[port][:n] = channel
        running.run(n)
        outs = np.stack([running.audio[port][:n] for port in running.outputs])
        return outs if len(outs) == channels else outs.mean(axis=0, keepdims=True)

    def reset(self) -> None:
        """Forget the instances (the next block makes fresh ones): the plugin starts from its initial state."""
        for running in self._running:
            running.close()
        self._running.clear()
        object.__setattr__(self, "_layout", None)
        object.__setattr__(self, "_started", False)

    def __del__(self):
        if "_running" in self.__dict__:
            self.reset()

    def __repr__(self) -> str:
        return f"<dreamfx.LV2Plugin {self.info.name} ({self.uri})>"


if __name__ == "__main__":  # a trial run (see trial_run): 1 s of stereo noise at 48 kHz in pieces of 256 frames
    try:
        noise = np.random.default_rng(0).normal(0.0, 0.1, (2, 48000)).astype(np.float32)
        controls = {symbol: float(value) for symbol, _, value in (arg.partition("=") for arg in sys.argv[2:])}
        LV2Plugin(sys.argv[1], sys.stdin.read() or None, **controls)(noise, 48000, buffer_size=256)
    except DreamfxError as exc:
        sys.exit(f"{exc}")
