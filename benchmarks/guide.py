"""Guided dreams judged by networks that did not dream them (issue 32).

Pairs (input, guide): the inputs are excerpts of the split's recordings (test: no network learned from them, no
preset was tuned on them; tune: for choosing settings); the guides are recordings of other packages and genres,
none of them an input (:data:`GUIDES`; test: Muldjord's held-out song, metal held out of every training, an
asc-music and a hyperrogue-music track).  For each match (:data:`dreamfx.dream.guide.MATCHES`), dreaming network
and setting, every input is dreamt toward every guide with the dream settings of ``--preset``, and judged by
networks that did not dream:

* toward: how far the judge's probabilities moved from the input's toward the guide's, as a fraction of the way
  (:func:`dreamfx.testing.transfer.toward`), for the taggers (msd-vgg and mtt-vgg: 100 tags together), the judge
  trained for judging (judge-deep, 100 tags) and the genre model (10 genres), each only if it did not dream;
* specific: the share of pairs that moved further toward their own guide than toward any other guide of the set
  (by the judges' mean), as a fraction of the way and as a distance (the projection on the unit direction: a
  fraction of the way to a guide close to the input is large for a small move);
* toward the guide's first seconds: how far toward the judges' profile of the guide's first seconds, as long as
  the input (what a dream that follows the guide in time, ``along=True``, follows while the input plays);
* kept: chroma and onset-envelope correlation with the input; retention of the dream through resynthesis (the
  dreaming network's match, :mod:`dreamfx.validate.metrics`); smoothness: the perturbation SNR under 1e-7 of
  input noise on the first 3 s (toward the first guide only: two more renders); RTF of the render with its
  re-analysis (offline, one thread per worker).

    python benchmarks/guide.py [--split test] [--inputs N] [--seconds 8] [--matches energy,gram,dot,tags]
                               [--preset guide] [--models tags-live] [--settings "iterations=16,step=0.3;along=True"]
"""

from __future__ import annotations

import ast
import json
import re
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import click
import numpy as np
import soundfile
import torch
from common import machine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # training/ (the recordings' split)

from dreamfx import DreamEffect  # noqa: E402
from dreamfx.dream.guide import MATCHES  # noqa: E402
from dreamfx.dsp.spectral import LOG_EPS, analyze_signal, log_magnitude  # noqa: E402
from dreamfx.nets.models import class_probabilities  # noqa: E402
from dreamfx.testing.transfer import kept, load_judges, toward  # noqa: E402
from dreamfx.validate.metrics import measure_retention, perturbation_snr  # noqa: E402
from training.real_recordings import package_of, recordings  # noqa: E402
from transfer import SAMPLE_RATE, excerpt, spread  # noqa: E402  (benchmarks/transfer.py)

GUIDE_SECONDS = 20.0
MULDJORD = Path("/usr/share/games/fretsonfire/data/songs/muldjord")
# split -> the guides: (package, file name), the first of the package's recordings with that name
GUIDES = {"test": [("fretsonfire-songs-muldjord", "mutilated_mime/song.ogg"), ("asc-music", "frontiers.mp3"),
                   ("hyperrogue-music", "hr-domina-hunting.ogg")],
          "tune": [("fretsonfire-songs-muldjord", "armygeddon/song.ogg"), ("warzone2100-music", ""),
                   ("megaglest-data", "asak-jadeflange.ogg")]}  # metal, ambient, guitar (as the taggers hear them)
JUDGES = {"taggers": ("msd-vgg", "mtt-vgg"), "judge-deep": ("judge-deep",), "genres": ("default",)}
KEPT = 0.7  # the bar for chroma and onset correlation with the input
_cache: dict = {}


def guide_files(split: str) -> list[Path]:
    """The split's guides (:data:`GUIDES`; an empty file name: the package's first recording)."""
    everything = [p for part in ("train", "tune", "test") for p in recordings(part)]
    everything += [MULDJORD / "mutilated_mime" / "song.ogg"]  # held out of every split
    return [next(p for p in everything if package_of(p).name == package and str(p).endswith(name))
            for package, name in GUIDES[split]]


def guide_name(path: Path) -> str:
    return f"{package_of(path).name}/{path.parent.name if MULDJORD in path.parents else path.name}"


def input_files(split: str, count: int, guides: list[Path]) -> list[Path]:
    """``count`` recordings of ``split`` that are not guides, spread over the split (0: all of them)."""
    files = [p for p in recordings(split) if p not in guides]
    return spread(files, count) if count else files


def profiles(audio: np.ndarray, dreamer: str) -> dict[str, np.ndarray]:
    """Each judge's probabilities on ``audio``, the judges that share a name with ``dreamer`` left out."""
    return {name: np.concatenate([j.profile(audio, SAMPLE_RATE) for j in _cache["judges"] if j.name in members])
            for name, members in JUDGES.items() if dreamer not in members}


def start_worker(inputs: list[Path], guide_paths: list[Path], seconds: float) -> None:
    """Load the judges, the inputs and the guides (excerpts written by :func:`main`) once per worker."""
    torch.set_num_threads(1)
    judges = load_judges([name for members in JUDGES.values() for name in members])
    _cache.update(inputs=[excerpt(p, seconds) for p in inputs], guide_paths=guide_paths, judges=judges,
                  guides=[soundfile.read(str(p), dtype="float32", always_2d=True)[0].T for p in guide_paths],
                  profiles={})


def cached_profiles(key: tuple, audio: np.ndarray, dreamer: str) -> dict[str, np.ndarray]:
    if (key, dreamer) not in _cache["profiles"]:
        _cache["profiles"][key, dreamer] = profiles(audio, dreamer)
    return _cache["profiles"][key, dreamer]


def along_profiles(effect: DreamEffect, guide: np.ndarray, channels: int) -> torch.Tensor:
    """The dreaming network's tag profile (chunks, n_classes) of each dream window of ``guide`` (channels,
    samples) at SAMPLE_RATE, window k ending where the input's chunk k ends: what "dream along" follows."""
    engine, network = effect.engine(SAMPLE_RATE, channels), effect.backend.network
    k, c = engine.chunk_frames, engine.context_frames
    logmag = log_magnitude(analyze_signal(guide.mean(axis=0), engine.stft))
    logmag = torch.cat([torch.full((logmag.shape[0], c), float(np.log(LOG_EPS))), logmag], dim=-1)  # as the engine
    windows = torch.stack([logmag[:, s:s + c + k] for s in range(0, logmag.shape[-1] - c - k + 1, k)])
    with torch.no_grad():
        return class_probabilities(network.spec, network(windows.to(effect.backend.device))).cpu()


def dream_along(effect: DreamEffect, guide: np.ndarray, channels: int) -> None:
    """Make ``effect``'s guided dream follow ``guide`` window by window instead of as a whole: before chunk k,
    the objective's guide profile becomes the guide's window k's (from the start again past its end)."""
    engine, whole = effect.engine(SAMPLE_RATE, channels), effect.settings.objective
    objectives = [replace(whole, guide=replace(whole.guide, profile=profile))
                  for profile in along_profiles(effect, guide, channels)]

    def before_chunk(index: int) -> None:
        engine.settings.objective = objectives[index % len(objectives)]
    engine.before_chunk.append(before_chunk)


def measure(task: tuple) -> dict:
    """One guided render and its verdicts: task = (input index, guide index, match, dreaming model, preset,
    settings: a label and the dream parameters it overrides; ``along=True``: :func:`dream_along`)."""
    i, g, match, model, preset, (label, settings) = task
    dry = _cache["inputs"][i]
    backend = None if match == "tags" else "torch"  # the preset's, where its exported step serves the match
    along = settings.get("along", False)
    effect = DreamEffect.from_preset(preset, **{"model": model or None, "backend": backend,
                                                **{k: v for k, v in settings.items() if k != "along"},
                                                "guide": str(_cache["guide_paths"][g]), "match": match})
    if along:
        dream_along(effect, _cache["guides"][g], dry.shape[0])
    model = effect.model_source
    started = time.perf_counter()
    report = measure_retention(effect, dry, SAMPLE_RATE)
    wet, seconds = report.output, time.perf_counter() - started
    smooth = perturbation_snr(lambda a: effect(a, SAMPLE_RATE), dry[:, :3 * SAMPLE_RATE]) if g == 0 else None
    before, after = cached_profiles(("input", i), dry, model), profiles(wet, model)
    guides = [cached_profiles(("guide", k), audio, model) for k, audio in enumerate(_cache["guides"])]
    way = {judge: [toward(before[judge], after[judge], guide[judge]) for guide in guides] for judge in before}
    aligned = cached_profiles(("aligned", g), _cache["guides"][g][:, :dry.shape[1]], model)  # its first seconds
    way_aligned = {judge: toward(before[judge], after[judge], aligned[judge]) for judge in before}
    distance = {judge: [toward(before[judge], after[judge], guide[judge])
                        * float(np.linalg.norm(guide[judge] - before[judge])) for guide in guides] for judge in before}
    return {"input": i, "guide": g, "match": match, "model": model, "settings": label, "toward": way,
            "toward_aligned": way_aligned,
            "distance": distance, "retention": report.retention, "smooth_db": smooth,
            "kept": kept(dry, wet, SAMPLE_RATE), "rtf": seconds / (dry.shape[1] / SAMPLE_RATE)}


def table(rows: list[dict]) -> None:
    """One line per (model, match, settings): toward its guide (mean, per judge, the share of pairs >= 0.25),
    toward the best other guide, specific (by fraction and by distance), the pairs that also keep the input
    (chroma and onset correlation >= :data:`KEPT`), kept, RTF."""
    print("| dreamer | match | settings | toward the guide (judges' mean) | pairs >= 0.25 | per judge | toward the "
          "best other guide | toward the guide's first seconds (as long as the input) | specific (fraction / "
          "distance) | >= 0.25 and specific (distance) | ... and kept >= 0.7 (that pair's chroma and onsets) | kept "
          "chroma / onsets (lowest) | retention | smooth (dB, lowest) | RTF |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for model, match, label in dict.fromkeys((r["model"], r["match"], r.get("settings", "")) for r in rows):
        mine = [r for r in rows if (r["model"], r["match"], r.get("settings", "")) == (model, match, label)]
        judges = list(mine[0]["toward"])
        own, other, specific = [], [], {"toward": [], "distance": []}
        for r in mine:
            for key in specific:
                mean = np.mean([r[key][j] for j in judges], axis=0)  # (guides,)
                specific[key].append(mean[r["guide"]] > max(np.delete(mean, r["guide"])))
                if key == "toward":
                    own.append(mean[r["guide"]])
                    other.append(max(np.delete(mean, r["guide"])))
        far = np.array(own) >= 0.25
        reached = far & np.array(specific["distance"])  # far enough and specific (by distance)
        per_judge = ", ".join(f"{j} {np.mean([r['toward'][j][r['guide']] for r in mine]):.2f}" for j in judges)
        kept_values = np.array([r["kept"] for r in mine])
        aligned = f"{np.mean([np.mean(list(r['toward_aligned'].values())) for r in mine]):.2f}" \
            if all("toward_aligned" in r for r in mine) else "-"
        print(f"| {model} | {match} | {label or '-'} | {np.mean(own):.2f} | {far.mean():.0%} | {per_judge} | "
              f"{np.mean(other):.2f} | {aligned} | "
              f"{np.mean(specific['toward']):.0%} / {np.mean(specific['distance']):.0%} | "
              f"{reached.mean():.0%} | {np.mean(reached & (kept_values.min(axis=1) >= KEPT)):.0%} | "
              f"{kept_values[:, 0].mean():.2f} / "
              f"{kept_values[:, 1].mean():.2f} ({kept_values.min(axis=0)[0]:.2f} / {kept_values.min(axis=0)[1]:.2f}) | "
              f"{np.mean([r.get('retention', np.nan) for r in mine]):.2f} | "
              f"{min((r['smooth_db'] for r in mine if r.get('smooth_db') is not None), default=np.nan):.0f} | "
              f"{np.mean([r['rtf'] for r in mine]):.2f} |")


def parse_settings(text: str) -> list[tuple[str, dict]]:
    """'iterations=16,step=0.3;memory=0.8' -> [(label, {'iterations': 16, 'step': 0.3}), (label, {...})]
    (tables in braces: 'transforms={"samples":8,"shift_bins":3}'); an empty text: the preset's settings alone."""
    settings = []
    for label in text.split(";") if text else [""]:
        pairs = [part.split("=", 1) for part in re.split(r",(?![^{]*})", label) if part]  # not inside {...}
        settings.append((label, {key.strip(): ast.literal_eval(value) for key, value in pairs}))
    return settings


@click.command()
@click.option("--split", type=click.Choice(["test", "tune"]), default="test", show_default=True,
              help="test: the verdict (never tuned on); tune: for choosing settings")
@click.option("--inputs", "count", default=0, help="recordings of the split dreamt (default: every one that is "
              "not a guide, 18 of the test split)")
@click.option("--seconds", default=8.0, show_default=True, help="length of each input excerpt")
@click.option("--matches", default=",".join(MATCHES), show_default=True)
@click.option("--models", default="", help="dreaming networks, comma-separated (default: the preset's)")
@click.option("--preset", default="guide", show_default=True, help="the dream settings")
@click.option("--settings", "settings_text", default="", help="dream parameters overriding the preset's, a set "
              "per run separated by semicolons: iterations=16,step=0.3;memory=0.8")
@click.option("--jobs", default=2, show_default=True)
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), default=None, help="raw rows as JSON")
def main(split: str, count: int, seconds: float, matches: str, models: str, preset: str, settings_text: str,
         jobs: int, save: Path | None) -> None:
    guides = guide_files(split)
    inputs = input_files(split, count, guides)
    count = len(inputs)
    print(f"# guide: {machine()}; {count} inputs of {seconds:g} s from the {split} split, {len(guides)} guides of "
          f"{GUIDE_SECONDS:g} s; preset {preset}")
    print("inputs: " + ", ".join(f"{package_of(p).name}/{p.name}" for p in inputs))
    print("guides: " + ", ".join(guide_name(p) for p in guides))
    tasks = [(i, g, match, model, preset, settings) for model in models.split(",") for match in matches.split(",")
             for settings in parse_settings(settings_text) for i in range(count) for g in range(len(guides))]
    started = time.time()
    with tempfile.TemporaryDirectory() as folder:
        guide_paths = [Path(folder) / f"guide{i}.wav" for i in range(len(guides))]
        for path, source in zip(guide_paths, guides):
            soundfile.write(str(path), excerpt(source, GUIDE_SECONDS).T, SAMPLE_RATE)
        with ProcessPoolExecutor(jobs, initializer=start_worker, initargs=(inputs, guide_paths, seconds)) as pool:
            rows = list(pool.map(measure, tasks))
    print(f"{time.time() - started:.0f} s\n")
    if save:
        save.write_text(json.dumps(rows, indent=1))
    table(rows)


if __name__ == "__main__":
    main()
