"""torch vs TorchScript vs onnxruntime: time per dream iteration and whole-file real-time factor.

Everything is measured in one run on this machine, on the bundled example clip
(10 s stereo, 44.1 kHz) with the default preset's dream; ratios are against the
torch backend.  Where CUDA is present, each backend is measured on the GPU too.
Also prints the one-off cost of building each backend's graph (ONNX export
with a cold and a warm cache, TorchScript trace).

    python benchmarks/backends.py [--repeats 3] [--iterations 200]
"""

from __future__ import annotations

import os
import tempfile
import time

import click
import numpy as np
import torch
from common import best_time, machine

from dreamfx import DreamEffect
from dreamfx.audio_io import read_audio
from dreamfx.engine.backends import BACKENDS
from dreamfx.nets.models import example_clip_path
from dreamfx.dream.ascent import StepInputs, first_step_inputs
from dreamfx.dsp.spectral import LOG_EPS, analyze_signal

EXAMPLE = example_clip_path()


def real_step_inputs(effect: DreamEffect, audio: np.ndarray, sr: int) -> StepInputs:
    """A chunk of the example clip as the engine would feed it: 24 context + 8 new frames."""
    stft = effect.backend.prepare(sr)
    magnitude = analyze_signal(torch.from_numpy(audio.mean(axis=0)), stft).abs()[None, :, 200:232]
    magnitude = magnitude.to(effect.backend.device)
    s = effect.settings
    return first_step_inputs(torch.log(magnitude[..., :24] + LOG_EPS), magnitude[..., 24:],
                             s.objective.weights(effect.spec), step=s.step, max_gain_db=s.max_gain_db,
                             smooth_bins=s.smooth_bins, smooth_frames=s.smooth_frames, preserve_level=True)


@click.command()
@click.option("--repeats", default=3, show_default=True, help="Best of this many whole-file renders.")
@click.option("--iterations", default=200, show_default=True, help="Dream iterations timed per backend.")
def main(repeats: int, iterations: int) -> None:
    audio, sr = read_audio(EXAMPLE)
    seconds = audio.shape[1] / sr
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(machine())
    print(f"clip: {EXAMPLE.name}, {seconds:.1f} s, {audio.shape[0]} ch, {sr} Hz; default preset dream")

    os.environ["DREAMFX_CACHE_DIR"] = tempfile.mkdtemp(prefix="dreamfx-bench-")  # a cold export cache
    for device in devices:
        effects, steps, builds = {}, {}, {}
        for backend in BACKENDS[1:]:
            effects[backend] = DreamEffect.from_preset("default", backend=backend, device=device)
            t = time.perf_counter()
            effects[backend](audio[:, :sr], sr)  # builds the graph (export / trace) on first use
            builds[backend] = time.perf_counter() - t
            step = effects[backend].backend.step_function(effects[backend].settings.objective)
            steps[backend] = (step, real_step_inputs(effects[backend], audio, sr))
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        per_iteration = {b: float("inf") for b in effects}
        rtf = dict(per_iteration)
        for _ in range(repeats):  # round robin, so drifts of a shared machine hit every backend alike
            for backend, (step, inputs) in steps.items():
                t = best_time(lambda: ([step(inputs) for _ in range(iterations)], sync()), 1) / iterations
                per_iteration[backend] = min(per_iteration[backend], t)
            for backend, effect in effects.items():
                rtf[backend] = min(rtf[backend], best_time(lambda: effect(audio, sr), 1) / seconds)
        print(f"\n[{device}]  backend       ms/iteration  (vs torch)   file RTF  (vs torch)   first render incl. build")
        for backend in effects:
            ms, r = per_iteration[backend], rtf[backend]
            print(f"[{device}]  {backend:12s}  {1000 * ms:10.3f}  ({ms / per_iteration['torch']:5.2f}x)   {r:8.3f}  "
                  f"({r / rtf['torch']:5.2f}x)   {builds[backend]:6.1f} s")
    effect = DreamEffect.from_preset("default", backend="onnxruntime")
    t = time.perf_counter()
    effect(audio[:, :sr], sr)
    print(f"\nonnxruntime first render with a warm export cache: {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
