"""Objectives and the dreaming iterations (gradient ascent on the log-magnitude).

The dream changes only the log-magnitude of the newest frames of a window; the
phase and the context frames are left alone.  The update is bounded twice, as
the design notes require: each step is ``step * clip(g / mean|g|, +-3)`` and the
accumulated change is clipped to ``+- max_gain_db``.

One iteration is a *step* (:class:`StepInputs` -> new delta, objective value),
run by a backend (:mod:`dreamfx.engine.backends`): torch autograd, or an exported graph
with an analytic gradient (:mod:`dreamfx.dream.step`).  Both call
:func:`ascent_update`, so the update rule exists once.

A dream others hear (torch backend): the gradient can be taken through random
small :class:`Transforms` of the window, averaged (expectation over
transformation), and the objective can be an ensemble's (the backend's member
networks, :meth:`Objective.for_member`).  The draws come from the chunk's own
generator, so streaming and offline renders draw the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from dreamfx.dream.guide import GUIDE_TAGS_GRAPH, MATCHES, GuideFeatures
from dreamfx.errors import DreamfxError
from dreamfx.nets.models import DreamNet, ModelSpec
from dreamfx.dsp.spectral import LOG_EPS

OBJECTIVE_KINDS = ("layer", "channel", "class", "layers", "guide")
STEP_CLIP = 3.0  # per-element bound of the normalised gradient
MAX_SMOOTH_BINS, MAX_SMOOTH_FRAMES = 32, 8  # largest gradient-smoothing radii (frequency bins, frames)


@dataclass(frozen=True)
class Objective:
    """What the dream maximises.

    kind ``"layer"``: mean squared activation of ``layer``;
    ``"channel"``: mean squared activation of one ``channel`` of ``layer``;
    ``"class"``: the logit of class ``target``.
    ``blend``: instead of one channel or class, several with weights:
    ``(("jazz", 0.7), ("metal", 0.3))`` or ``((5, 1.0), (17, 0.5))`` (normalised to sum 1).

    Those kinds are a weighted sum over the channels of one graph layer
    (:attr:`graph_layer`): ``sum_c w_c * mean_hw(act_c ** 2)`` for conv layers,
    ``sum_k w_k * logit_k`` for classes, with the weights of :meth:`weights`.

    ``"layers"``: a blend of conv layers, ``(("conv2", 0.5), ("conv4", 0.5))``:
    the weighted geometric mean of their energies, ``prod_l E_l ** w_l``, so
    each layer's *relative* gain counts alike however different their scales
    (its gain is the weighted mean of the layers' log-gains).  Autograd only:
    an exported dream step ends at one layer.

    ``"guide"``: the ``match`` (one of :data:`~dreamfx.dream.guide.MATCHES`) of the window's features with a
    guide recording's (:mod:`dreamfx.dream.guide`), over every conv layer; ``member_guides``: the same guide
    summarised by each ensemble member, ``((member name, features), ...)``.  Autograd only (exported steps: the
    "tags" match of one network).
    """

    kind: str = "layer"
    layer: str = "conv3"
    channel: int = 0
    target: str | None = None
    blend: tuple[tuple[str | int, float], ...] = ()
    guide: GuideFeatures | None = None
    match: str = "tags"
    member_guides: tuple[tuple[str, GuideFeatures], ...] = ()

    def __post_init__(self):  # from JSON metadata, pairs arrive as lists
        object.__setattr__(self, "blend", tuple((key, weight) for key, weight in self.blend))

    @classmethod
    def on_graph_layer(cls, spec: ModelSpec, graph_layer: str) -> Objective:
        """A representative objective whose graph ends at ``graph_layer`` (a conv layer, "logits", or
        "guide-tags": a guided dream's "tags" match, without a guide)."""
        if graph_layer == GUIDE_TAGS_GRAPH:
            return cls("guide", match="tags")
        if graph_layer == "logits":
            return cls("class", target=spec.class_names[0])
        if graph_layer not in spec.layer_names:
            raise DreamfxError(f"unknown layer {graph_layer!r}: use one of {', '.join(spec.layer_names)}")
        return cls("layer", graph_layer)

    def validate(self, spec: ModelSpec) -> None:
        """Raise DreamfxError naming the bad field and what is allowed."""
        if self.kind not in OBJECTIVE_KINDS:
            raise DreamfxError(f"unknown objective {self.kind!r}: use one of {', '.join(OBJECTIVE_KINDS)}")
        if self.kind == "guide":
            return self._validate_guide(spec)
        if self.blend:
            self._validate_blend(spec)
        elif self.kind == "class":
            if self.target not in spec.class_names:
                raise DreamfxError(f"unknown target class {self.target!r}: this model knows "
                                   f"{', '.join(spec.class_names)}")
            return
        conv_layers = spec.layer_names[:-1]
        if self.layer not in conv_layers:
            raise DreamfxError(f"unknown layer {self.layer!r}: use one of {', '.join(conv_layers)} "
                               "(or objective='class' with a target)")
        if self.kind == "channel" and not self.blend:
            n = spec.channels[conv_layers.index(self.layer)]
            if not 0 <= self.channel < n:
                raise DreamfxError(f"channel {self.channel} is out of range for layer {self.layer!r}: use 0..{n - 1}")

    def _validate_guide(self, spec: ModelSpec) -> None:
        if self.match not in MATCHES:
            raise DreamfxError(f"unknown guide match {self.match!r}: use one of {', '.join(MATCHES)}")
        if self.guide is None:
            raise DreamfxError("a guided dream needs a guide: give a recording (--guide FILE, or guide=... in "
                               "Python)")
        if self.guide.layers != spec.layer_names[:-1] or len(self.guide.profile) != len(spec.class_names):
            raise DreamfxError(f"guide {self.guide.name} was summarised by another network: set the guide again "
                               "after changing the model")

    def _validate_blend(self, spec: ModelSpec) -> None:
        if self.kind == "class":
            allowed = spec.class_names
        elif self.kind == "layers":
            allowed = spec.layer_names[:-1]
        elif self.kind == "channel" and self.layer in spec.layer_names[:-1]:
            allowed = range(spec.channels[spec.layer_names.index(self.layer)])
        else:
            raise DreamfxError("a blend weights classes, conv layers, or channels of a conv layer")
        for key, weight in self.blend:
            if key not in allowed or isinstance(key, bool):
                what = f"channel {key!r} of layer {self.layer!r}: use 0..{len(allowed) - 1}" \
                    if self.kind == "channel" else f"{'class' if self.kind == 'class' else 'layer'} {key!r}: " \
                    f"this model knows {', '.join(allowed)}"
                raise DreamfxError(f"the blend names an unknown {what}")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
                raise DreamfxError(f"blend weight {weight!r} of {key!r} must be a number >= 0")
        if sum(weight for _, weight in self.blend) <= 0:
            raise DreamfxError("blend weights must have a positive sum")

    @property
    def is_energy(self) -> bool:
        """True when the objective is a positive energy (compare by ratio), False for logits and guide matches
        (by difference)."""
        return self.kind not in ("class", "guide")

    @property
    def graph_layer(self) -> str:
        """The layer an exported dream step ends at: the conv layer, or ``"logits"`` for classes (for a blend
        of layers, the deepest, up to which the model must run)."""
        if self.kind == "layers":
            return max((name for name, _ in self.blend), key=lambda name: int(name.removeprefix("conv")))
        if self.kind == "guide":
            return GUIDE_TAGS_GRAPH if self.match == "tags" else "logits"
        return "logits" if self.kind == "class" else self.layer

    def weights(self, spec: ModelSpec) -> torch.Tensor:
        """(n,) float32 weights over the channels (or classes) of :attr:`graph_layer`, or over the conv
        layers for a blend of layers; for a guide, its tag profile (the "tags" match's weights; the other
        matches take none)."""
        if self.kind == "guide":  # without a guide (an export's example), every tag at even odds
            return torch.full((len(spec.class_names),), 0.5) if self.guide is None else self.guide.profile.float().cpu()
        if self.kind in ("class", "layers"):
            names = spec.class_names if self.kind == "class" else spec.layer_names[:-1]
            picked = self.blend or ((self.target, 1.0),)
            w = torch.zeros(len(names))
            for name, weight in picked:
                w[names.index(name)] = weight
            return w / w.sum()
        n = spec.channels[spec.layer_names.index(self.layer)]
        if self.kind == "layer":
            return torch.full((n,), 1.0 / n)
        w = torch.zeros(n)
        for channel, weight in self.blend or ((self.channel, 1.0),):
            w[channel] = weight
        return w / w.sum()

    def record(self) -> dict:
        """The objective's settings as JSON values, for an exported step's metadata (a guide's features are no
        metadata: the "tags" step takes the guide's profile as its weights)."""
        fields = {"kind": self.kind, "layer": self.layer, "channel": self.channel, "target": self.target,
                  "blend": list(self.blend)}
        return {**fields, "match": self.match} if self.kind == "guide" else fields

    def __call__(self, model: DreamNet, logmag: torch.Tensor) -> torch.Tensor:
        """Objective per batch item: logmag (B, n_bins, T) -> (B,), the weighted sum of :meth:`weights`."""
        if self.kind == "guide":
            return self.guide.match(model, logmag, self.match, model.layer_names[:-1])
        w = self.weights(model.spec).to(logmag.device)
        if self.kind == "class":
            return model(logmag) @ w
        if self.kind == "layers":
            acts, names = model.activations(logmag, until=self.graph_layer), model.layer_names[:-1]
            return torch.exp(sum(w[names.index(name)] * acts[name].square().mean(dim=(1, 2, 3)).clamp_min(1e-20).log()
                                 for name, _ in self.blend))
        act = model.activations(logmag, until=self.layer)[self.layer]
        return act.square().mean(dim=(2, 3)) @ w

    def for_member(self, spec: ModelSpec, member: ModelSpec, member_name: str) -> Objective:
        """The same objective for an ensemble member (``member``, its metadata; ``spec``: the dreaming model's).

        Classes (or a blend of them): the member's class of the same name, or, for a member that holds the
        model's whole tag list under a prefix (``msd:jazz``, ``mtt:piano``), the prefixed one.  A guide: the
        same match with the member's own summary of the guide (:attr:`member_guides`)."""
        if self.kind == "guide":
            features = dict(self.member_guides).get(member_name)
            if features is None:
                raise DreamfxError(f"ensemble member {member_name} has not listened to the guide: set the guide's "
                                   "file again (every network of the ensemble summarises it)")
            return Objective("guide", guide=features, match=self.match)
        if self.kind != "class":
            raise DreamfxError(f"an ensemble dreams toward classes, tags (target / targets) or a guide, not a "
                               f"{self.kind!r} objective: the networks' layers differ; set a target, or drop the "
                               "ensemble")
        names = set(member.class_names)
        prefix = next((p + ":" for p in {c.split(":")[0] for c in member.class_names if ":" in c}
                       if [c[len(p) + 1:] for c in member.class_names if c.startswith(p + ":")]
                       == list(spec.class_names)), "")
        if not prefix and not set(spec.class_names) <= names:
            raise DreamfxError(f"ensemble member {member_name} does not know this model's tags (it has "
                               f"{', '.join(member.class_names[:6])}, ...): use members trained on the same tags")
        rename = lambda name: name if name in names and not prefix else prefix + name  # noqa: E731
        return Objective("class", target=None if self.target is None else rename(self.target),
                         blend=tuple((rename(name), weight) for name, weight in self.blend))

    def gain(self, before: float, after: float) -> float:
        """Log-gain for energies (ln after/before), plain difference for logits."""
        return float(np.log(after / before)) if self.is_energy else after - before


@dataclass(frozen=True)
class Transforms:
    """Random small changes of the dream window that each iteration's gradient is averaged over.

    samples: transformed copies per iteration (the gradient is their mean);
    shift_bins: largest shift along frequency, STFT bins (edges repeated);
    gain_db: largest level change; tilt_db: largest spectral tilt, dB per
    octave around bin :data:`TILT_PIVOT_BIN` (over at most +-4 octaves);
    noise_db: standard deviation of noise added to every bin's level, dB.
    Each draw is uniform in +-its largest value (the noise Gaussian).
    """

    samples: int = 1
    shift_bins: int = 0
    gain_db: float = 0.0
    tilt_db: float = 0.0
    noise_db: float = 0.0

    LIMITS = {"samples": (1, 16), "shift_bins": (0, 16), "gain_db": (0.0, 12.0), "tilt_db": (0.0, 6.0),
              "noise_db": (0.0, 12.0)}

    @classmethod
    def parse(cls, value) -> Transforms:
        """From a Transforms, None (none) or a dict of the fields; DreamfxError naming a bad key or value."""
        if value is None or isinstance(value, Transforms):
            return value or cls()
        if not isinstance(value, dict):
            raise DreamfxError(f"transforms must be a table of {', '.join(cls.LIMITS)}, got {value!r}: e.g. "
                               "transforms = {samples = 4, shift_bins = 2, gain_db = 3.0}")
        for key, item in value.items():
            if key not in cls.LIMITS:
                raise DreamfxError(f"transforms has no {key!r}: use {', '.join(cls.LIMITS)}")
            low, high = cls.LIMITS[key]
            kind = type(low)
            if isinstance(item, bool) or not isinstance(item, (int, float)) or not low <= item <= high \
                    or (kind is int and item != int(item)):
                raise DreamfxError(f"transforms.{key} = {item!r}: use {'an integer' if kind is int else 'a number'} "
                                   f"in {low}..{high}")
        return cls(**{key: type(cls.LIMITS[key][0])(item) for key, item in value.items()})

    @property
    def active(self) -> bool:
        return self != Transforms()

    def as_dict(self) -> dict:
        return {key: getattr(self, key) for key in self.LIMITS if getattr(self, key) != getattr(Transforms(), key)}

    def draw(self, rng: np.random.Generator, n_bins: int, frames: int) -> TransformDraw:
        """One iteration's draws for one batch item (``samples`` of each)."""
        s, unit = self.samples, float(np.log(10) / 20)  # dB -> natural-log magnitude
        noise = rng.standard_normal((s, n_bins, frames), dtype=np.float32) * np.float32(self.noise_db * unit) \
            if self.noise_db else np.zeros((s, 1, 1), np.float32)
        shift = torch.from_numpy(rng.integers(-self.shift_bins, self.shift_bins + 1, s))
        gain, tilt = (torch.from_numpy((rng.uniform(-1, 1, s) * largest * unit).astype(np.float32))
                      for largest in (self.gain_db, self.tilt_db))
        return TransformDraw(shift, gain, tilt, torch.from_numpy(noise))


TILT_PIVOT_BIN = 32  # the tilt's pivot: about 1 kHz for the taggers (31.25 Hz bins), 690 Hz for the genre models


class TransformDraw(NamedTuple):
    """Draws of :meth:`Transforms.draw`, stacked (B, S, ...) by :func:`stack_draws`: shift (B, S) int64 bins,
    gain (B, S) and tilt (B, S) natural-log units (tilt per octave), noise (B, S, n_bins or 1, T or 1)."""

    shift: torch.Tensor
    gain: torch.Tensor
    tilt: torch.Tensor
    noise: torch.Tensor


def stack_draws(draws: list[TransformDraw]) -> TransformDraw:
    return TransformDraw(*(torch.stack(parts) for parts in zip(*draws)))


def transformed(window: torch.Tensor, draw: TransformDraw) -> torch.Tensor:
    """Window logmag (B, n_bins, T) -> (B * S, n_bins, T): each item's S transformed copies (differentiable)."""
    b, n, t = window.shape
    s = draw.shift.shape[1]
    device = window.device
    index = (torch.arange(n, device=device) - draw.shift.to(device)[..., None]).clamp(0, n - 1)  # (B, S, n)
    shifted = torch.gather(window[:, None].expand(b, s, n, t), 2, index[..., None].expand(b, s, n, t))
    octaves = torch.log2(torch.arange(n, device=device).clamp_min(1) / TILT_PIVOT_BIN).clamp(-4, 4)  # (n,)
    level = draw.gain.to(device)[..., None] + draw.tilt.to(device)[..., None] * octaves  # (B, S, n)
    return (shifted + level[..., None] + draw.noise.to(device)).reshape(b * s, n, t)


class StepInputs(NamedTuple):
    """The inputs of one dream iteration, in the order of the exported graphs' inputs.

    context_logmag (B, n_bins, C): natural-log magnitude of the context frames.
    magnitude (B, n_bins, K): linear magnitude of the new frames (before the dream).
    delta (B, n_bins, K): the change of natural-log magnitude so far.
    shift: int64 scalar in 0..C+K-1, the jitter roll of the window (frames).
    weights (n,): objective weights (:meth:`Objective.weights`).
    smooth_freq (2 * MAX_SMOOTH_BINS + 1,), smooth_time (2 * MAX_SMOOTH_FRAMES + 1,): smoothing kernels.
    step, bound, preserve_level: float32 scalars (preserve_level 0 or 1).
    """

    context_logmag: torch.Tensor
    magnitude: torch.Tensor
    delta: torch.Tensor
    shift: torch.Tensor
    weights: torch.Tensor
    smooth_freq: torch.Tensor
    smooth_time: torch.Tensor
    step: torch.Tensor
    bound: torch.Tensor
    preserve_level: torch.Tensor


StepFunction = Callable[..., tuple[torch.Tensor, torch.Tensor]]  # (StepInputs[, TransformDraw]) -> (delta, value)


def dreamed_logmag(magnitude: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Log-magnitude the model sees after the dream's change ``delta`` (natural-log units)."""
    return torch.log(magnitude * torch.exp(delta) + LOG_EPS)


def smoothing_kernel(radius: int, max_radius: int) -> torch.Tensor:
    """(2 * max_radius + 1,) box of width 2 * radius + 1, zero outside: one axis of the gradient smoothing.

    A fixed kernel length keeps the radius out of the exported graphs' shapes.
    """
    if not 0 <= radius <= max_radius:
        raise DreamfxError(f"smoothing radius {radius} is outside 0..{max_radius}")
    offset = torch.arange(-max_radius, max_radius + 1).abs()
    return (offset <= radius).float() / (2 * radius + 1)


def ascent_update(inputs: StepInputs, grad: torch.Tensor) -> torch.Tensor:
    """The bounded, normalised ascent step: the new delta (B, n_bins, K) from grad d(objective)/d(delta)."""
    kf, kt = inputs.smooth_freq, inputs.smooth_time
    grad = F.conv2d(grad[:, None], kf.reshape(1, 1, -1, 1), padding=(MAX_SMOOTH_BINS, 0))
    grad = F.conv2d(grad, kt.reshape(1, 1, 1, -1), padding=(0, MAX_SMOOTH_FRAMES))[:, 0]
    scale = grad.abs().mean(dim=(1, 2), keepdim=True).clamp_min(1e-20)
    delta = inputs.delta + inputs.step * (grad / scale).clamp(-STEP_CLIP, STEP_CLIP)
    delta = torch.minimum(torch.maximum(delta, -inputs.bound), inputs.bound)
    return delta + inputs.preserve_level * (level_preserved(inputs.magnitude, delta) - delta)


def level_preserved(magnitude: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """``delta`` (B, n_bins, K) shifted per frame so that every frame of ``magnitude * exp(delta)`` keeps the
    energy of ``magnitude`` (B, n_bins, K)."""
    power = magnitude.square()
    energy = power.sum(dim=1, keepdim=True).clamp_min(1e-20)
    dreamed_energy = (power * torch.exp(2 * delta)).sum(dim=1, keepdim=True).clamp_min(1e-20)
    return delta - 0.5 * torch.log(dreamed_energy / energy)


def first_step_inputs(context_logmag: torch.Tensor, magnitude: torch.Tensor, weights: torch.Tensor, *,
                      step: float, max_gain_db: float, smooth_bins: int = 0, smooth_frames: int = 0,
                      preserve_level: bool = False) -> StepInputs:
    """The StepInputs of a dream's first iteration (delta 0, no jitter), on ``magnitude``'s device.

    context_logmag (B, n_bins, C), magnitude (B, n_bins, K): see :class:`StepInputs`.
    """
    device = magnitude.device
    scalar = lambda value: torch.tensor(value, dtype=torch.float32, device=device)  # noqa: E731
    return StepInputs(
        context_logmag=context_logmag.to(device), magnitude=magnitude, delta=torch.zeros_like(magnitude),
        shift=torch.tensor(0, device=device), weights=weights.to(device),
        smooth_freq=smoothing_kernel(smooth_bins, MAX_SMOOTH_BINS).to(device),
        smooth_time=smoothing_kernel(smooth_frames, MAX_SMOOTH_FRAMES).to(device), step=scalar(step),
        bound=scalar(max_gain_db / 20 * np.log(10)), preserve_level=scalar(float(preserve_level)))


def octave_radius(radius: int, max_radius: int, octaves: int, stage: int) -> int:
    """Smoothing radius of octave ``stage`` (0 = coarsest): doubling the width per octave above the finest."""
    return min(max_radius, (radius + 1) * 2 ** (octaves - 1 - stage) - 1)


def step_by_shift(step_function: StepFunction, inputs: StepInputs, shifts: list[int],
                  draw: TransformDraw | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One iteration of a batch whose items roll their windows by ``shifts`` (one per item, frames): the items
    of each shift run together (a step graph takes one shift), with their ``draw`` of transforms when given.
    Returns (delta (B, n_bins, K), value (B,))."""
    device = inputs.delta.device
    extra = () if draw is None else (draw,)
    if len(set(shifts)) == 1:
        return step_function(inputs._replace(shift=torch.tensor(shifts[0], device=device)), *extra)
    delta, value = torch.empty_like(inputs.delta), torch.empty(len(shifts), device=device)
    for shift in sorted(set(shifts)):
        items = torch.tensor([i for i, s in enumerate(shifts) if s == shift], device=device)
        part_delta, part_value = step_function(inputs._replace(
            context_logmag=inputs.context_logmag[items], magnitude=inputs.magnitude[items], delta=inputs.delta[items],
            shift=torch.tensor(shift, device=device)), *(TransformDraw(*(t[items.cpu()] for t in d)) for d in extra))
        delta[items], value[items] = part_delta, part_value
    return delta, value


def dream(step_function: StepFunction, weights: torch.Tensor, magnitude: torch.Tensor, n_new: int, *,
          iterations: int, step: float, max_gain_db: float, jitter: int,
          rng: np.random.Generator | list[np.random.Generator] | None,
          smooth_bins: int = 0, smooth_frames: int = 0, preserve_level: bool = False, octaves: int = 1,
          may_continue: Callable[[int], bool] | None = None,
          trace: list[float] | None = None,
          project: Callable[[torch.Tensor], torch.Tensor] | None = None,
          transforms: Transforms = Transforms()) -> tuple[torch.Tensor, int]:
    """Gradient ascent on the log-magnitude of the last ``n_new`` frames.

    step_function: one iteration (a backend's ``step``); weights: the objective's.
    magnitude: (B, n_bins, T) linear magnitudes of context + new frames.
    Returns (delta (B, n_bins, n_new), the change of natural-log magnitude;
    the number of iterations run).

    jitter: roll the window by a random number of frames (|shift| <= jitter,
    drawn from ``rng``, or for a batch from each item's own generator in the
    list ``rng``) each iteration.  smooth_bins / smooth_frames: average
    the gradient over that neighbourhood; smooth changes are closer to a
    consistent STFT and survive resynthesis better.  preserve_level: rescale
    every frame so its energy stays that of the input (a timbre change, not a
    level change).  octaves: split the iterations into this many stages,
    coarse to fine, the smoothing widths doubling per stage above the last
    (DeepDream's octaves, as scales of the gradient).  may_continue(done):
    asked before every iteration; False stops early (a live deadline).  The
    jitter draws do not depend on it.  trace: when given, the objective (mean
    over the batch) before each iteration is appended to it.  project(delta):
    applied after every iteration (then bounded again), e.g. the change that
    overlap-add can deliver, so every later iteration starts from a
    spectrogram that audio can have.  transforms: each iteration's gradient is
    the mean over random transformed copies of the window (drawn from ``rng``
    after the jitter; a backend whose step takes a TransformDraw).
    """
    device, frames = magnitude.device, magnitude.shape[-1]
    inputs = first_step_inputs(torch.log(magnitude[..., :-n_new] + LOG_EPS), magnitude[..., -n_new:], weights,
                               step=step, max_gain_db=max_gain_db, smooth_bins=smooth_bins,
                               smooth_frames=smooth_frames, preserve_level=preserve_level)
    kernels = [(smoothing_kernel(octave_radius(smooth_bins, MAX_SMOOTH_BINS, octaves, stage), MAX_SMOOTH_BINS),
                smoothing_kernel(octave_radius(smooth_frames, MAX_SMOOTH_FRAMES, octaves, stage), MAX_SMOOTH_FRAMES))
               for stage in range(octaves)] if octaves > 1 else []
    generators = rng if isinstance(rng, list) else [rng] * magnitude.shape[0]
    for done in range(iterations):
        shifts = [int(g.integers(-jitter, jitter + 1)) % frames if jitter else 0 for g in generators]
        draw = stack_draws([transforms.draw(g, magnitude.shape[1], frames) for g in generators]) \
            if transforms.active else None
        if may_continue is not None and not may_continue(done):
            return inputs.delta, done
        if kernels:
            smooth_freq, smooth_time = kernels[done * octaves // iterations]
            inputs = inputs._replace(smooth_freq=smooth_freq.to(device), smooth_time=smooth_time.to(device))
        delta, value = step_by_shift(step_function, inputs, shifts, draw)
        if trace is not None:
            trace.append(float(value.mean()))
        if project is not None:
            delta = project(delta).clamp(-inputs.bound, inputs.bound)
        inputs = inputs._replace(delta=delta)
    return inputs.delta, iterations
