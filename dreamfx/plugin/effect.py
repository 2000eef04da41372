"""DreamEffect: the dream engine behind pedalboard's calling convention.

    effect = DreamEffect(intensity=0.7, layer="conv3")
    wet = effect(audio, sample_rate)                 # offline: aligned, same length
    block_out = effect(block, sr, reset=False)       # streaming: delayed by latency_samples(sr)

Parameters are plain attributes, validated on assignment; an invalid value raises
:class:`~dreamfx.errors.DreamfxError` with the allowed range.  Arrays are float32 ``(channels, samples)`` or
``(samples,)``; ``(samples, channels)`` is recognised as pedalboard does when the first axis is the longer one.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from dreamfx.audio_io import check_finite, to_channels_first
from dreamfx.dream.ascent import MAX_SMOOTH_BINS, MAX_SMOOTH_FRAMES, Objective, Transforms
from dreamfx.dream.guide import MATCHES, GuideFeatures, model_digest, summarise_guide_file
from dreamfx.engine.backends import open_backend
from dreamfx.engine.streaming import DreamEngine, DreamSettings, stream_latency
from dreamfx.errors import DreamfxError
from dreamfx.dsp.fixed_blocks import FixedBlocks
from dreamfx.nets.models import DreamNet, ModelSpec
from dreamfx.plugin.presets import CONSTRUCTION_KEYS, OBJECTIVE_KEYS, TUNABLE, Preset, load_preset, needs_guide


class _Range:
    """A numeric attribute stored in DreamSettings, checked against [low, high] (``optional``: or None / "off")."""

    def __init__(self, kind: type, low: float, high: float, doc: str, optional: bool = False):
        self.kind, self.low, self.high, self.__doc__, self.optional = kind, low, high, doc, optional

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        return self if obj is None else getattr(obj.settings, self.name)

    def __set__(self, obj, value):
        if self.optional and (value is None or isinstance(value, str) and value == "off"):
            return setattr(obj.settings, self.name, None)
        ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
        if self.kind is int:
            ok = ok and float(value).is_integer()
        if not ok or not self.low <= value <= self.high or value != value:
            kind = ("None, 'off' or " if self.optional else "") + ("an integer" if self.kind is int else "a number")
            raise DreamfxError(f"{self.name} must be {kind} in {self.low}..{self.high}, got {value!r}: e.g. "
                               f"effect.{self.name} = {self.low}")
        setattr(obj.settings, self.name, self.kind(value))


class _Flag(_Range):
    """A True/False attribute stored in DreamSettings."""

    def __init__(self, doc: str):
        super().__init__(bool, False, True, doc)

    def __set__(self, obj, value):
        if not isinstance(value, bool):
            raise DreamfxError(f"{self.name} must be True or False, got {value!r}")
        setattr(obj.settings, self.name, value)


RECONSTRUCTIONS = ("input-phase", "phase-refine")
MAX_WINDOW_PART = 512  # largest chunk_frames / context_frames (a tagger's 3.1 s window has 260 context frames)


def _read_only(name: str, doc: str) -> property:
    """A read-only attribute of DreamEffect, kept in ``_<name>``."""
    return property(lambda effect: getattr(effect, "_" + name), doc=doc)


class DreamEffect:
    """A DeepDream audio effect with pedalboard's calling convention.

    model: a model file (safetensors, or a TorchScript / ONNX dream step from ``dreamfx export``), a loaded
    DreamNet, or None for the bundled default.
    layer / channel / target: the objective (default: an exported step's own objective, else the energy of conv3);
    channels / targets / layers: a weighted blend of channels of ``layer``, of classes, or of conv layers.
    band_hz: (low, high) frequency band the dream may change, Hz (edges tapered over a third of an octave); the
    default (0, inf) is the whole spectrum.
    chunk_frames / context_frames: STFT frames dreamed per chunk / frames of past context the model sees (fixed at
    construction: they set the latency; default: the model's own, 8 / 24 for the genre models).
    backend: "auto", "torch", "torchscript" or "onnxruntime" (see :mod:`dreamfx.engine.backends`).
    device: "auto" (CUDA when available), "cpu" or "cuda".
    ensemble: ``{model: weight}``, networks that dream with ``model`` (weight 1) toward the same tag or guide
    (each network listens to the guide itself; torch backend; fixed at construction), so that what changes is
    what several networks hear.
    transforms: random small transforms of the window each iteration's gradient is averaged over, e.g.
    ``{"samples": 4, "shift_bins": 2, "gain_db": 3.0}`` (:class:`~dreamfx.dream.ascent.Transforms`; torch backend).
    guide: a recording (a file path, or :class:`~dreamfx.dream.guide.GuideFeatures`) to dream toward instead of a
    layer or class, with ``match`` (one of "energy", "gram", "dot", "tags"; :mod:`dreamfx.dream.guide`).
    """

    is_effect = True
    is_instrument = False

    intensity = _Range(float, 0.0, 1.0, "Depth of the dream, 0..1; 0 passes the input through exactly.")
    iterations = _Range(int, 0, 256, "Gradient-ascent iterations per chunk.")
    step = _Range(float, 0.0, 2.0, "Step size per iteration (natural-log magnitude).")
    mix = _Range(float, 0.0, 1.0, "Wet/dry mix, 0..1.")
    seed = _Range(int, 0, 2**32 - 1, "Seed of the per-chunk jitter.")
    jitter = _Range(int, 0, 16, "Largest random time roll of the dream window, frames.")
    max_gain_db = _Range(float, 0.0, 48.0, "Largest change of any STFT bin, dB.")
    smooth_bins = _Range(int, 0, MAX_SMOOTH_BINS, "Gradient smoothing across frequency, +- STFT bins.")
    smooth_frames = _Range(int, 0, MAX_SMOOTH_FRAMES, "Gradient smoothing across time, +- frames.")
    octaves = _Range(int, 1, 4, "Scales of the dream, coarse to fine: the iterations are split into this many "
                     "stages, each smoothing the gradient half as much as the one before.")
    phase_iterations = _Range(int, 1, 64, "Griffin-Lim iterations per chunk when reconstruction is 'phase-refine'.")
    memory = _Range(float, 0.0, 0.95, "Weight of the previous chunk's change in each chunk's, against 1 - memory "
                    "for its own dream (temporal smoothing); 0: every chunk's change is its own.")
    canvas_db = _Range(float, -60.0, -10.0, "Faint noise this many dB under the input, which the dream paints on "
                       "where the input leaves gaps (dreamfx.dsp.canvas); None or 'off': none.", optional=True)
    canvas_slope = _Range(float, 0.0, 3.0, "The canvas's colour: its power falls as 1 / f ** slope above 50 Hz; 0 "
                          "white, 1 pink (-3 dB per octave), 2 brown (-6 dB per octave).")
    preserve_level = _Flag("Keep each frame's energy, so the dream changes timbre, not loudness.")
    offline_batch = _Range(int, 1, 64, "Chunks dreamt in one batch (files): up to 2x faster; the chunks reach "
                           "the engine in pieces of that many (a FIFO: the latency grows by as many chunks), so "
                           "every render in any blocks is the same, and equals a chunk-by-chunk render within float "
                           "rounding; 1 (the default) dreams chunk by chunk at the lowest latency (live). Not part "
                           "of presets.")
    consistency = _Flag("Project the change after every iteration onto what overlap-add can deliver, so the "
                        "model dreams only on spectrograms that audio can have (models that dream linear "
                        "magnitudes; a mel-image model is inverted by least squares instead).")

    def __init__(self, model: str | Path | DreamNet | None = None, *, intensity: float = 1.0, iterations: int = 8,
                 step: float = 0.1, mix: float = 1.0, layer: str | None = None, channel: int | None = None,
                 target: str | None = None, channels: dict | None = None, targets: dict | None = None,
                 layers: dict | None = None, seed: int = 0, jitter: int = 0, max_gain_db: float = 12.0,
                 smooth_bins: int = 2, smooth_frames: int = 1, octaves: int = 1, memory: float = 0.0,
                 preserve_level: bool = True, reconstruction: str = "input-phase", phase_iterations: int = 8,
                 consistency: bool = False, band_hz: tuple[float, float] = (0.0, float("inf")),
                 chunk_frames: int | None = None, context_frames: int | None = None, backend: str = "auto",
                 device: str = "auto", ensemble: dict | None = None, transforms: dict | None = None,
                 guide: str | Path | GuideFeatures | None = None, match: str = "tags", canvas_db: float | None = None,
                 canvas_slope: float = 1.0):
        self._backend = open_backend(model, backend, device, ensemble, exporter=export_step_graph)
        self._ensemble = dict(ensemble) if ensemble else None
        # What the effect was built from, for saving it as a preset: "default", a file path, or None (in memory).
        self._model_source = "default" if model is None else None if isinstance(model, DreamNet) else str(model)
        self._backend_name, self._device_name = backend, device
        self._settings = DreamSettings()
        default_chunk, default_context = self.spec.default_window
        self._chunk_frames, self._context_frames = _check_chunking(
            self.spec, default_chunk if chunk_frames is None else chunk_frames,
            default_context if context_frames is None else context_frames)
        self.intensity, self.iterations, self.step, self.mix = intensity, iterations, step, mix
        self.seed, self.jitter, self.max_gain_db = seed, jitter, max_gain_db
        self.smooth_bins, self.smooth_frames, self.preserve_level = smooth_bins, smooth_frames, preserve_level
        self.band_hz, self.canvas_db, self.canvas_slope = band_hz, canvas_db, canvas_slope
        self.settings.objective = self.backend.default_objective or Objective()
        self._building = True  # the objective is checked against the backend once all its parts are set
        self.octaves, self.memory = octaves, memory
        self.reconstruction, self.phase_iterations = reconstruction, phase_iterations
        self.consistency, self.transforms, self.match = consistency, transforms, match
        for name, value in (("layer", layer), ("channel", channel), ("channels", channels), ("target", target),
                            ("targets", targets), ("layers", layers), ("guide", guide)):
            if value is not None:
                setattr(self, name, value)
        self._building = False
        self._set_objective(self.settings.objective)
        self._engine: DreamEngine | None = None
        self._batch_blocks = FixedBlocks(1)  # offline batches' pieces (see batch_block)

    ensemble = _read_only("ensemble", "The networks dreaming with the model, {model: weight} (the model's weight "
                          "is 1), or None; chosen when the effect is built.")
    model_source = _read_only("model_source", "What the effect was built from, for presets: 'default', a file "
                              "path, or None (a DreamNet in memory).")
    backend_name = _read_only("backend_name", "The backend asked for at construction ('auto', 'torch', ...).")
    device_name = _read_only("device_name", "The device asked for at construction ('auto', 'cpu', 'cuda').")
    settings = _read_only("settings", "The DreamSettings the engine reads per chunk (set through the parameters).")
    chunk_frames = _read_only("chunk_frames", "STFT frames dreamed per chunk (sets the latency).")
    context_frames = _read_only("context_frames", "Frames of past context the model sees with each chunk.")

    def __setattr__(self, name: str, value) -> None:
        """Parameters validate what they are given (one-line DreamfxError naming the parameter and its range);
        any other public name is refused, so a misspelt parameter is never set silently."""
        attribute = getattr(type(self), name, None)
        if name.startswith("_") or _settable(attribute):
            object.__setattr__(self, name, value)
        elif attribute is None:
            raise DreamfxError(f"DreamEffect has no parameter {name!r}: its parameters are "
                               f"{', '.join(parameter_names())}")
        else:
            fixed = " (chosen when the effect is built: DreamEffect(model, ..., " \
                    f"{name}=...))" if name in ("chunk_frames", "context_frames") else ""
            raise DreamfxError(f"DreamEffect.{name} is read-only{fixed}")

    @classmethod
    def from_preset(cls, preset: str | Path | Preset, **overrides) -> DreamEffect:
        """The dream stage of a preset (a name in presets/, a .toml path, or a loaded Preset) with its parameters,
        ``overrides`` (not None) taking precedence.

        An override that chooses the objective replaces the preset's choice: ``target``/``targets``/``channel``/
        ``channels``/``layers`` drop the preset's of those five, ``layer`` drops them too (a layer objective).
        """
        preset = preset if isinstance(preset, Preset) else load_preset(preset)
        overrides = {k: v for k, v in overrides.items() if v is not None}
        params = dict(preset.dream)
        if any(k in overrides for k in OBJECTIVE_KEYS + ("layer",)):
            params = {k: v for k, v in params.items() if k not in OBJECTIVE_KEYS}
        params.update(overrides)
        if needs_guide(params):
            raise DreamfxError(f"{preset.where} dreams toward a recording you choose: give one with --guide FILE "
                               "(Python: guide='FILE')")
        construction = {k: params[k] for k in CONSTRUCTION_KEYS[1:] if k in params}
        if isinstance(construction.get("ensemble"), dict):  # its members are checked against the objective asked
            construction.update({k: params[k] for k in OBJECTIVE_KEYS + ("layer",) if k in params})
            construction["ensemble"] = {str(preset.model_source(name, "ensemble")): weight
                                        for name, weight in construction["ensemble"].items()}
        try:
            effect = cls(preset.model_source(params.get("model", "default")), **construction)
        except DreamfxError as exc:
            raise DreamfxError(f"{preset.where}: [dream] {exc}") from None
        for key in TUNABLE:
            if key in params:
                value = params[key]
                if key == "guide" and key not in overrides:  # the preset's own: relative to it, its checksum
                    value = preset.guide_path(value)
                try:
                    setattr(effect, key, tuple(value) if key == "band_hz" and isinstance(value, list) else value)
                except DreamfxError as exc:
                    raise DreamfxError(f"{preset.where}: dream.{key} = {value!r}: {exc}") from None
        return effect

    @property
    def reconstruction(self) -> str:
        """How audio is rebuilt from the dreamed magnitudes: "input-phase" (the input's phase) or
        "phase-refine" (then ``phase_iterations`` Griffin-Lim iterations within each chunk)."""
        return self.settings.reconstruction

    @reconstruction.setter
    def reconstruction(self, value: str) -> None:
        if value not in RECONSTRUCTIONS:
            raise DreamfxError(f"reconstruction must be one of {', '.join(RECONSTRUCTIONS)}, got {value!r}")
        self.settings.reconstruction = value

    @property
    def band_hz(self) -> tuple[float, float]:
        """(low, high) Hz: the band the dream may change; outside it the input passes unchanged."""
        return self.settings.band_hz

    @band_hz.setter
    def band_hz(self, band) -> None:
        ok = isinstance(band, (tuple, list)) and len(band) == 2 and all(
            isinstance(f, (int, float, np.number)) and not isinstance(f, bool) and f == f for f in band)
        if not ok or not 0 <= band[0] < band[1]:
            raise DreamfxError(f"band_hz must be two frequencies (low, high) with 0 <= low < high, got {band!r}: "
                               "e.g. effect.band_hz = (200, 4000)")
        self.settings.band_hz = (float(band[0]), float(band[1]))

    @property
    def transforms(self) -> dict | None:
        """Random transforms of the window each iteration's gradient is averaged over (the fields of
        :class:`~dreamfx.dream.ascent.Transforms` that are set), or None."""
        return self.settings.transforms.as_dict() or None

    @transforms.setter
    def transforms(self, value: dict | None) -> None:
        parsed = Transforms.parse(value)
        self.backend.check_transforms(parsed)
        self.settings.transforms = parsed

    # --- objective: layer energy, one channel of it, or a class logit ------------
    def _set_objective(self, objective: Objective, parameter: str = "objective") -> None:
        """Validate ``objective`` against the model and the backend, then dream it; an error names ``parameter``
        (the attribute that was set)."""
        try:
            objective.validate(self.spec)
            if not self._building:
                self.backend.check_objective(objective)
        except DreamfxError as exc:
            raise DreamfxError(str(exc) if parameter in str(exc) else f"{parameter}: {exc}") from None
        self.settings.objective = objective

    @property
    def layer(self) -> str:
        """Layer whose activation energy is maximised (conv1..convN)."""
        return self.settings.objective.layer

    @layer.setter
    def layer(self, name: str) -> None:
        if name not in self.layer_names:
            raise DreamfxError(f"unknown layer {name!r}: use one of {', '.join(self.layer_names)}")
        o = self.settings.objective
        self._set_objective(replace(o, layer=name) if o.kind not in ("layers", "guide") else
                            replace(o, kind="layer", layer=name, blend=()), "layer")

    @property
    def layers(self) -> dict[str, float] | None:
        """A weighted blend of conv layers to maximise together, e.g. {"conv2": 0.5, "conv4": 0.5} (the weighted
        geometric mean of their energies; torch backend); None when not blending."""
        return self._blend("layers")

    @layers.setter
    def layers(self, weights: dict | None) -> None:
        self._set_blend("layers", "layers", weights)

    @property
    def channel(self) -> int | None:
        """One channel of ``layer`` to maximise, or None for the whole layer (or a blend: ``channels``)."""
        o = self.settings.objective
        return o.channel if o.kind == "channel" and not o.blend else None

    @channel.setter
    def channel(self, index: int | None) -> None:
        o = self.settings.objective
        if index is None:
            if o.kind == "channel" and not o.blend:
                self._set_objective(replace(o, kind="layer", channel=0), "channel")
        else:
            if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
                raise DreamfxError(f"channel must be an integer or None, got {index!r}")
            self._set_objective(replace(o, kind="channel", channel=int(index), target=None, blend=()), "channel")

    @property
    def channels(self) -> dict[int, float] | None:
        """A weighted blend of channels of ``layer`` to maximise, e.g. {5: 1.0, 17: 0.5}; None when not blending."""
        return self._blend("channel")

    @channels.setter
    def channels(self, weights: dict | None) -> None:
        self._set_blend("channels", "channel", weights, lambda k: int(k) if isinstance(k, str) and k.isdigit() else k)

    @property
    def target(self) -> str | None:
        """Class name whose logit is maximised, or None for a layer objective (or a blend: ``targets``)."""
        return self.settings.objective.target

    @target.setter
    def target(self, name: str | None) -> None:
        o = self.settings.objective
        if name is None:
            if o.kind == "class" and not o.blend:
                self._set_objective(replace(o, kind="layer", target=None), "target")
        else:
            self._set_objective(replace(o, kind="class", target=name, blend=()), "target")

    @property
    def targets(self) -> dict[str, float] | None:
        """A weighted blend of classes to dream toward, e.g. {"jazz": 0.7, "metal": 0.3}; None when not blending."""
        return self._blend("class")

    @targets.setter
    def targets(self, weights: dict | None) -> None:
        self._set_blend("targets", "class", weights)

    def _blend(self, kind: str) -> dict | None:
        o = self.settings.objective
        return dict(o.blend) if o.kind == kind and o.blend else None

    def _set_blend(self, parameter: str, kind: str, weights: dict | None, key=lambda k: k) -> None:
        """Dream a blend of ``kind`` ("class", "channel" or "layers"), set as ``parameter``; None ends a blend
        of that kind (back to the layer)."""
        o = self.settings.objective
        if weights is None:
            if o.kind == kind and o.blend:
                self._set_objective(replace(o, kind="layer", blend=()), parameter)
            return
        try:
            blend = tuple((key(k), w) for k, w in _blend_items(weights))
        except DreamfxError as exc:
            raise DreamfxError(f"{parameter}: {exc}") from None
        self._set_objective(replace(o, kind=kind, target=None, blend=blend), parameter)

    @property
    def guide(self) -> str | None:
        """The path of the recording the dream moves toward (:mod:`dreamfx.dream.guide`), or None.  Set a file
        path (its first :data:`~dreamfx.dream.guide.GUIDE_SECONDS` are summarised by the model once) or
        GuideFeatures; None goes back to the layer."""
        o = self.settings.objective
        return o.guide.name if o.kind == "guide" else None

    @guide.setter
    def guide(self, value: str | Path | GuideFeatures | None) -> None:
        o = self.settings.objective
        if value is None:
            if o.kind == "guide":
                self._set_objective(replace(o, kind="layer", guide=None), "guide")
            return
        if not isinstance(value, (str, Path, GuideFeatures)) or value == "":
            raise DreamfxError(f"guide must be a recording's path (or None), got {value!r}: e.g. effect.guide = "
                               "'that-sound.flac'")
        if isinstance(value, GuideFeatures) and self.ensemble:
            raise DreamfxError(f"guide: the features of {value.name} were summarised by one network, and every "
                               "network of the ensemble must listen: set the guide's file instead")
        if isinstance(value, GuideFeatures) and (self.backend.network is None or
                                                 value.model_digest != model_digest(self.backend.network)):
            raise DreamfxError(f"guide: the features of {value.name} were summarised by another network: set the "
                               "guide's file instead (this effect's network listens to it)")
        value, members = (value, ()) if isinstance(value, GuideFeatures) else self.summarise_guide(value)
        self._set_objective(replace(o, kind="guide", target=None, blend=(), guide=value, member_guides=members),
                            "guide")

    def summarise_guide(self, path: str | Path) -> tuple[GuideFeatures, tuple[tuple[str, GuideFeatures], ...]]:
        """The statistics of the recording at ``path`` under this effect's network, and under each ensemble
        member ``((name, features), ...)`` (for :attr:`guide`)."""
        network = self.backend.network
        if network is None:
            raise DreamfxError("guide: the network must listen to the guide, which an exported dream step or a "
                               "mel-image model cannot: build the effect from a safetensors model that dreams STFT "
                               "bins (e.g. tags-live; its step is exported on demand)")
        names = [name for name, _, _ in self.backend.members]
        features = summarise_guide_file(path, [network, *(net for _, net, _ in self.backend.members)],
                                        self.chunk_frames + self.context_frames, self.backend.device)
        return features[0], tuple(zip(names, features[1:]))

    @property
    def match(self) -> str:
        """How a guided dream compares the window with its guide: one of "energy", "gram", "dot", "tags"."""
        return self.settings.objective.match

    @match.setter
    def match(self, value: str) -> None:
        if value not in MATCHES:
            raise DreamfxError(f"match must be one of {', '.join(MATCHES)}, got {value!r}: e.g. effect.match = "
                               "'tags'")
        self._set_objective(replace(self.settings.objective, match=value), "match")

    @property
    def objective(self) -> str:
        """'layer', 'channel', 'class', 'layers' or 'guide' (read-only: set layer, channel, target, a blend or a
        guide)."""
        return self.settings.objective.kind

    @property
    def spec(self) -> ModelSpec:
        """The model's classes, layers and STFT settings."""
        return self.backend.spec

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.spec.class_names

    @property
    def layer_names(self) -> tuple[str, ...]:
        return self.spec.layer_names[:-1]

    def parameters(self) -> dict:
        """Everything needed to build this effect again, as a preset's [dream] table (see dreamfx.plugin.presets)."""
        if self.model_source is None:
            raise DreamfxError("this DreamEffect was built from an in-memory model, which a preset cannot name: "
                               "save it with dreamfx.nets.models.save_model and build the effect from that file")
        params = {"model": self.model_source, "backend": self.backend_name, "device": self.device_name,
                  "chunk_frames": self.chunk_frames, "context_frames": self.context_frames, "ensemble": self.ensemble}
        params.update({name: getattr(self, name) for name in TUNABLE})
        params["band_hz"] = list(self.band_hz)
        if params["channels"] is not None:  # TOML keys are strings
            params["channels"] = {str(k): w for k, w in params["channels"].items()}
        for name, unset in (("channel", None), ("channels", None), ("target", None), ("targets", None),
                            ("layers", None), ("band_hz", [0.0, float("inf")]), ("ensemble", None),
                            ("transforms", None), ("guide", None), ("canvas_db", None)):
            if params[name] == unset:
                del params[name]
        for name, needs in (("match", "guide"), ("canvas_slope", "canvas_db")):
            if needs not in params:
                del params[name]
        return params

    # --- pedalboard calling convention ---------------------------------------------
    def latency_samples(self, sample_rate: float) -> int:
        """Delay of the streaming output (reset=False) at ``sample_rate``, in samples."""
        stft = self.spec.stft_for(_check_sample_rate(sample_rate))
        return stream_latency(stft, self.chunk_frames) + self.batch_block(sample_rate) - 1

    @property
    def backend(self):
        """Where the iterations run (:mod:`dreamfx.engine.backends`), chosen when the effect is built."""
        return self._backend

    @backend.setter
    def backend(self, value):
        raise DreamfxError(f"backend is chosen when the effect is built: DreamEffect(model, backend={value!r}, ...) "
                           f"or DreamEffect.from_preset(name, backend={value!r})")

    @property
    def device(self):
        """The torch device the iterations run on, chosen when the effect is built."""
        return self._backend.device

    @device.setter
    def device(self, value):
        raise DreamfxError(f"device is chosen when the effect is built: DreamEffect(model, device={value!r}, ...) "
                           f"or DreamEffect.from_preset(name, device={value!r})")

    def chunk_samples(self, sample_rate: float) -> int:
        """Samples of one dream chunk at ``sample_rate`` (``chunk_frames`` hops)."""
        return self.chunk_frames * self.spec.stft_for(_check_sample_rate(sample_rate)).hop

    def batch_block(self, sample_rate: float) -> int:
        """Samples of the pieces the engine is handed when :attr:`offline_batch` > 1: that many chunks, from the
        stream's first sample on, through a :class:`~dreamfx.dsp.fixed_blocks.FixedBlocks` FIFO (its ``size - 1``
        samples are part of the latency), so every render holds the same chunks in the same batches whatever
        the blocks; 1 (no FIFO) when chunks are dreamt one by one, which any block size gives exactly."""
        if self.offline_batch == 1:
            return 1
        return self.offline_batch * self.chunk_samples(sample_rate)

    @property
    def stats(self):
        """Counters of the current engine (chunks, dreamed, fallbacks, non-finite blocks)."""
        return None if self._engine is None else self._engine.stats

    def engine(self, sample_rate: float, channels: int) -> DreamEngine:
        """The engine for this sample rate and channel count (rebuilt when they change)."""
        sr = _check_sample_rate(sample_rate)
        e = self._engine
        if e is None or e.stft.sample_rate != sr or e.channels != channels:
            self._batch_blocks.reset()
            self._engine = DreamEngine(self.backend, self.settings, sr, channels, chunk_frames=self.chunk_frames,
                                       context_frames=self.context_frames)
        return self._engine

    def process(self, input_array: np.ndarray, sample_rate: float, buffer_size: int = 8192, reset: bool = True,
                progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Run audio through the dream.

        reset=True: start from silence and return output aligned with the input
        (latency compensated), same shape.  reset=False: continue the stream;
        output is delayed by :meth:`latency_samples`.  ``progress`` (optional)
        is called with the number of input samples done after each buffer.
        """
        audio, restore = to_channels_first(input_array, self._engine.channels if self._engine and not reset else None)
        check_finite(audio, "input audio")
        if not isinstance(buffer_size, (int, np.integer)) or buffer_size < 1:
            raise DreamfxError(f"buffer_size must be a positive integer, got {buffer_size!r}")
        if audio.shape[1] == 0:  # hosts send empty blocks: nothing in, nothing out, the stream untouched
            return restore(audio.copy())
        engine = self.engine(sample_rate, audio.shape[0])
        batch = self.batch_block(sample_rate)
        # whole chunks per piece, so an engine that takes whole chunks only gets them (any piece gives the same)
        step = -(-buffer_size // engine.chunk_samples) * engine.chunk_samples if batch == 1 else batch
        self._batch_blocks.resize(batch)
        if reset:
            self._batch_blocks.reset()
            return restore(engine.render(audio, step, progress))

        def in_pieces(block: np.ndarray) -> np.ndarray:
            return np.concatenate([engine.process(block[:, i:i + step]) for i in range(0, block.shape[1], step)],
                                  axis=1)
        return restore(in_pieces(audio) if batch == 1 else self._batch_blocks(audio, in_pieces))

    __call__ = process

    def reset(self) -> None:
        """Clear all audio state (the dream restarts from silence); parameters stay."""
        self._batch_blocks.reset()
        if self._engine is not None:
            self._engine.reset()

    def __repr__(self) -> str:
        target = f" target={self.target!r}" if self.target else ""
        channel = f" channel={self.channel}" if self.channel is not None else ""
        return (f"<dreamfx.DreamEffect intensity={self.intensity} iterations={self.iterations} step={self.step} "
                f"mix={self.mix} layer={self.layer!r}{channel}{target} at {hex(id(self))}>")


def _blend_items(weights) -> tuple:
    if not isinstance(weights, dict) or not weights:
        raise DreamfxError(f"a blend is a non-empty dict of name or channel -> weight, got {weights!r}: "
                           "e.g. {'jazz': 0.7, 'metal': 0.3}")
    return tuple(weights.items())


def _check_chunking(spec: ModelSpec, chunk_frames, context_frames) -> tuple[int, int]:
    """Validate the chunk geometry: the model's pooling must cover the window exactly."""
    for name, value, low in (("chunk_frames", chunk_frames, 1), ("context_frames", context_frames, 0)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not low <= value <= MAX_WINDOW_PART:
            raise DreamfxError(f"{name} must be an integer in {low}..{MAX_WINDOW_PART}, got {value!r}")
    spec.check_window(chunk_frames + context_frames)
    return int(chunk_frames), int(context_frames)


def _check_sample_rate(sample_rate) -> int:
    if not isinstance(sample_rate, (int, float, np.number)) or not float(sample_rate).is_integer() or sample_rate <= 0:
        raise DreamfxError(f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
    return int(sample_rate)


def parameter_names() -> list[str]:
    """The attributes of DreamEffect that can be set (each validates its value)."""
    return sorted(name for name, attribute in vars(DreamEffect).items() if not name.startswith("_") and
                  _settable(attribute))


def _settable(attribute) -> bool:
    """Whether a class attribute of DreamEffect takes assignments: a parameter (a validated range or flag) or a
    property with a setter (which validates, or refuses with the line to write instead)."""
    return isinstance(attribute, _Range) or (isinstance(attribute, property) and attribute.fset is not None)


def export_step_graph(net: DreamNet, graph_layer: str, backend: str, device) -> Callable:
    """The engine's exporter: a safetensors model's dream step as a TorchScript or ONNX graph, exported when the
    backend first needs it (dreamfx.export is imported then, never for a model file exported before)."""
    from dreamfx.export.graphs import step_graph
    return step_graph(net, graph_layer, backend, device)
