"""``dreamfx validate``: a plugin validator's battery for presets, models and exports (after Tracktion's pluginval).

    subject = subject_for("metal-hallucination")        # a preset, a model (name or file) or an exported graph
    for outcome in run_checks(subject, strictness=5):   # one Outcome per named check: passed, figure
        print(outcome.line())

Each check builds nothing it does not need and measures one promise of the
effect: block sizes and sample rates change nothing but the delay, bad input
never reaches the output, the reported latency is true, parameters validate
what they are given, state survives a preset's save and load, damaged files
are refused in one line.  Checks carry a strictness (1..10, like pluginval):
a run at strictness N runs every check of strictness <= N, and some checks
try more cases as N grows.  The checks: :mod:`~dreamfx.validate.audio_checks`,
:mod:`~dreamfx.validate.parameter_checks`, :mod:`~dreamfx.validate.damaged_files`; their frame:
:mod:`~dreamfx.validate.framework`.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterator

from dreamfx.errors import DreamfxError
from dreamfx.nets.models import SHIPPED_MODELS, model_path
from dreamfx.plugin.chain import Chain
from dreamfx.plugin.effect import DreamEffect
from dreamfx.plugin.presets import load_preset, preset_names, preset_path
from dreamfx.validate import audio_checks, damaged_files, parameter_checks
from dreamfx.validate.framework import CHECKS, CheckFailed, Context, Outcome, Subject

CHECK_MODULES = (audio_checks, parameter_checks, damaged_files)  # imported to register their checks, in this order


# --- running the battery ------------------------------------------------------------------------------
def run_checks(subject: Subject, strictness: int = 5, seconds: float | None = None,
               only: set[str] | None = None) -> Iterator[Outcome]:
    """Run every check of ``strictness`` or lower that applies to ``subject`` (or those named in ``only``)."""
    start = time.perf_counter()
    try:
        ctx = Context(subject, strictness, seconds)
    except Exception as exc:  # noqa: BLE001 - a subject that cannot be built fails its first check
        yield Outcome(subject.name, "build", "state", False, f"{type(exc).__name__}: {exc}",
                      time.perf_counter() - start)
        return
    yield Outcome(subject.name, "build", "state", True, f"built in {time.perf_counter() - start:.1f} s; latency "
                  f"{ctx.latency()} samples at {ctx.sr} Hz", time.perf_counter() - start)
    for c in CHECKS:
        if (c.name in only) if only is not None else (c.strictness <= strictness and c.applies(subject)):
            start = time.perf_counter()
            try:
                passed, figure = True, c.run(ctx)
            except CheckFailed as failure:
                passed, figure = False, str(failure)
            except Exception as exc:  # noqa: BLE001 - a check that crashes is a failed check
                passed, figure = False, f"raised {type(exc).__name__}: {str(exc)[:200]}"
            yield Outcome(subject.name, c.name, c.group, passed, figure, time.perf_counter() - start)


def subject_for(target: str | Path) -> Subject:
    """The Subject of a preset (name or .toml), a shipped model name, a .safetensors model or an export.
    ``preset:NAME`` and ``model:NAME`` say which where a preset and a model share a name (a bare ``default`` is
    the preset)."""
    target = str(target)
    kind, _, name = target.rpartition(":") if target.startswith(("preset:", "model:")) else ("", "", target)
    suffix = Path(name).suffix
    if kind == "preset" or (not kind and (suffix == ".toml" or name in preset_names())):
        path = preset_path(name)
        preset = load_preset(path)
        model = preset.dream.get("model", "default")
        model_file = None if model in SHIPPED_MODELS else preset.model_source(model)
        return Subject(target, "preset", lambda: Chain.from_preset(path, **preset.example_overrides()),
                       model_file=model_file, preset_file=path)
    path = model_path(name)
    if name in SHIPPED_MODELS or suffix == ".safetensors":
        return Subject(target, "model", lambda: DreamEffect(path), model_file=path)
    if suffix in (".onnx", ".pt", ".ts"):
        from dreamfx.engine.backends import read_model_metadata
        rate = read_model_metadata(path)["export"]["sample_rate"] if path.is_file() else 44100
        return Subject(target, "export", lambda: DreamEffect(path), sample_rates=(int(rate),), model_file=path)
    raise DreamfxError(f"cannot validate {target!r}: name a preset ({', '.join(preset_names())}), a shipped model "
                       f"({', '.join(SHIPPED_MODELS)}), a .toml preset, a .safetensors model or an .onnx / .pt export")


def shipped_targets() -> list[str]:
    """Every shipped preset and model."""
    return preset_names() + [f"model:{m}" if m in preset_names() else m for m in SHIPPED_MODELS]


def _validate_target(target: str, strictness: int, seconds: float | None, threads: int) -> list[Outcome]:
    import torch
    torch.set_num_threads(threads)
    return list(run_checks(subject_for(target), strictness, seconds))


def validate(targets: list[str], strictness: int, seconds: float | None, jobs: int,
             report: Callable[[Outcome], None]) -> list[Outcome]:
    """Run the battery on every target, ``jobs`` targets at a time in worker processes; ``report`` is called
    with each outcome (a target's outcomes together, as it finishes, when jobs > 1)."""
    import os
    for target in targets:
        subject_for(target)  # refuse a bad target before any work
    outcomes: list[Outcome] = []
    threads = max(1, (os.cpu_count() or 1) // jobs)
    if jobs == 1:
        for target in targets:
            for outcome in run_checks(subject_for(target), strictness, seconds):
                report(outcome)
                outcomes.append(outcome)
        return outcomes
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        for result in pool.map(_validate_target, targets, [strictness] * len(targets), [seconds] * len(targets),
                               [threads] * len(targets)):
            for outcome in result:
                report(outcome)
                outcomes.append(outcome)
    return outcomes


def summary(outcomes: list[Outcome]) -> str:
    failed = [o for o in outcomes if not o.passed]
    subjects = len({o.subject for o in outcomes})
    line = f"{subjects} targets, {len(outcomes)} checks: {len(outcomes) - len(failed)} passed, {len(failed)} failed"
    return line + ("" if not failed else " (" + ", ".join(f"{o.subject}: {o.check}" for o in failed[:12]) +
                   (", ..." if len(failed) > 12 else "") + ")")
