"""The real-music taggers (musicnn VGG, ported) next to the compact genre model, measured side by side.

1. The tag head's window: tag agreement with musicnn's own outputs (tests/data/musicnn_reference.safetensors,
   recorded with TensorFlow) when the tagger sees the whole 3 s patch or only its last 2.08 s (the dream
   window), and what one dream iteration costs on each.
2. Per-iteration time and offline real-time factor of each model's presets on torch and onnxruntime, on the
   example clip (10 s, 44.1 kHz), ratios against the compact model's default preset.
3. Retention and tag rise of every tagger preset on the example clip.
4. Peak memory (RSS) of a process rendering the example clip with each model.

    python benchmarks/taggers.py [--repeats 2]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np
import torch
from common import best_time, machine
from safetensors.numpy import load_file
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # training/ (the reference clips)

from dreamfx import DreamEffect  # noqa: E402
from dreamfx.audio_io import read_audio  # noqa: E402
from dreamfx.dream.ascent import first_step_inputs  # noqa: E402
from dreamfx.validate.metrics import measure_retention  # noqa: E402
from dreamfx.nets.models import example_clip_path, load_model, patch_logits  # noqa: E402
from dreamfx.plugin.presets import load_preset, preset_names  # noqa: E402
from dreamfx.dsp.spectral import LOG_EPS, analyze_signal  # noqa: E402
from training.musicnn_reference import CLIPS, read_clip  # noqa: E402

REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "data" / "musicnn_reference.safetensors"
PATCH = 374  # STFT frames of a 3 s musicnn patch


def window_study(model, reference: dict, key: str) -> None:
    """Agreement with musicnn's 3 s patches when the tagger hears the patch's last ``frames`` frames."""
    clips = {name: read_clip(*CLIPS[name], sample_rate=44100)[0] for name in CLIPS if CLIPS[name][0].is_file()}
    for frames, label in ((PATCH, "whole 3 s patch (187 musicnn frames)"), (260, "last 2.08 s (the dream window)")):
        hits, rhos = [], []
        for name, audio in clips.items():
            golden = reference[f"{name}/{key}"]
            logits = patch_logits(model, audio, 44100, PATCH)[:len(golden)]
            if frames != PATCH:
                stft = model.configure(44100)
                logmag = torch.log(analyze_signal(audio.mean(axis=0), stft).abs() + LOG_EPS)[None]
                with torch.no_grad():
                    logits = torch.cat([model(logmag[..., s + PATCH - frames:s + PATCH])
                                        for s in range(0, len(golden) * PATCH, PATCH)])
            ours = logits.sigmoid().numpy()
            hits += [int(np.argmax(g)) in np.argsort(-o)[:3] for g, o in zip(golden, ours)]
            rhos += [spearmanr(g, o).statistic for g, o in zip(golden, ours)]
        print(f"  {label:38s} top tag in top 3: {np.mean(hits):5.0%}   rank correlation mean {np.mean(rhos):.3f} "
              f"min {np.min(rhos):.3f}   ({len(hits)} patches of {len(clips)} clips)")


def iteration_time(effect: DreamEffect, audio: np.ndarray, sr: int, frames: int, iterations: int = 10) -> float:
    """Seconds per dream iteration of ``effect``'s backend on a real window of ``frames`` frames."""
    stft = effect.backend.prepare(sr)
    chunk = effect.chunk_frames
    magnitude = analyze_signal(audio.mean(axis=0), stft).abs()[None, :, 40:40 + frames].to(effect.backend.device)
    s = effect.settings
    inputs = first_step_inputs(torch.log(magnitude[..., :-chunk] + LOG_EPS), magnitude[..., -chunk:],
                               s.objective.weights(effect.spec), step=s.step, max_gain_db=s.max_gain_db,
                               smooth_bins=s.smooth_bins, smooth_frames=s.smooth_frames, preserve_level=True)
    step = effect.backend.step_function(s.objective)
    step(inputs)
    return best_time(lambda: [step(inputs) for _ in range(iterations)], 2) / iterations


def peak_rss_mb(preset: str) -> float:
    """Peak RSS (MB) of a fresh process that renders the example clip through ``preset``'s chain."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over an exec from the forked parent's copy.
    code = (f"from dreamfx import Chain; from dreamfx.audio_io import read_audio; "
            f"from dreamfx.nets.models import example_clip_path; a, sr = read_audio(example_clip_path()); "
            f"Chain.from_preset({preset!r})(a, sr); "
            f"print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split()[-1]) / 1024


@click.command()
@click.option("--repeats", default=2, show_default=True, help="Best of this many whole-file renders.")
def main(repeats: int) -> None:
    os.environ["DREAMFX_CACHE_DIR"] = tempfile.mkdtemp(prefix="dreamfx-bench-")
    print(machine())
    audio, sr = read_audio(example_clip_path())
    seconds = audio.shape[1] / sr
    reference = load_file(str(REFERENCE))

    print("\n1. The tag head's window (dense layer slid over time; agreement with musicnn's TensorFlow outputs)")
    for name, key in (("msd-vgg", "MSD_vgg"), ("mtt-vgg", "MTT_vgg")):
        print(f" {name}")
        window_study(load_model(name), reference, key)
    effect = DreamEffect(model="msd-vgg", target="jazz")
    for frames in (260, PATCH + 14):  # 2.08 s, and the shortest whole window holding a 3 s patch (3.1 s)
        print(f"  one dream iteration (torch) on {frames} frames ({frames * 8.005e-3:.2f} s): "
              f"{1000 * iteration_time(effect, audio, sr, frames):.0f} ms")

    print(f"\n2. Speed on the example clip ({seconds:.0f} s, {sr} Hz): ms per iteration on the model's window, "
          "offline RTF (render time / audio time)")
    rows = [("default", "compact genre model, default preset"), ("msd-jazz", "msd-vgg, msd-jazz preset"),
            ("mtt-piano", "mtt-vgg, mtt-piano preset")]
    base = {}
    print(f"  {'model and preset':36s} {'backend':12s} {'ms/iter':>8s} {'(x)':>7s} {'iter/s audio':>12s} "
          f"{'RTF':>7s} {'(x)':>7s}")
    for preset, label in rows:
        for backend in ("torch", "onnxruntime"):
            effect = DreamEffect.from_preset(preset, backend=backend)
            effect(audio[:, :sr * 3], sr)  # builds the graphs (onnxruntime: export)
            per_iteration = iteration_time(effect, audio, sr, effect.chunk_frames + effect.context_frames)
            rtf = best_time(lambda: effect(audio, sr), repeats) / seconds
            base.setdefault(backend, (per_iteration, rtf))
            chunk_seconds = effect.chunk_frames * effect.backend.prepare(sr).hop / sr
            print(f"  {label:36s} {backend:12s} {1000 * per_iteration:8.1f} {per_iteration / base[backend][0]:6.1f}x "
                  f"{effect.iterations / chunk_seconds:12.1f} {rtf:7.3f} {rtf / base[backend][1]:6.1f}x")

    print("\n3. Tagger presets on the example clip: retention, and the target tags' probability before -> after "
          "(mean over 3 s patches every 0.75 s)")
    for preset in (p for p in preset_names() if load_preset(p).dream.get("model") in ("msd-vgg", "mtt-vgg")):
        effect = DreamEffect.from_preset(preset)
        t = time.perf_counter()
        report = measure_retention(effect, audio, sr)
        elapsed = time.perf_counter() - t
        model = effect.backend.model
        weights = effect.settings.objective.weights(effect.spec)
        before, after = ((patch_logits(model, a, sr, PATCH, PATCH // 4).sigmoid() @ weights).mean().item()
                         for a in (audio, report.output))
        tags = effect.targets or {effect.target: 1.0}
        print(f"  {preset:18s} {'+'.join(tags):28s} {before:.3f} -> {after:.3f}   retention {report.retention:.3f}"
              f"   dream alone RTF {elapsed / seconds:.2f}")

    print("\n4. Peak memory of a process rendering the example clip (RSS)")
    for preset, label in rows:
        print(f"  {label:36s} {peak_rss_mb(preset):7.0f} MB")


if __name__ == "__main__":
    main()
