"""Do other networks hear the dream?  Dream with some networks, judge with networks the dream never used.

On excerpts of real recordings from the *test* split of training/real_recordings.py (never used for training
or tuning), for each lever (alone and combined) and each tag, the dream stage of the tag's preset is run with the
lever's settings, and measured:

* dreamer: the dreaming network's probability of the tag, before -> after (mean over 3 s patches);
* held out: the judge trained for judging only (judge-deep) and every other network that knows the tag and did
  not dream (the tagger itself when only students dreamt, the other tag set's tagger, the genre model, the
  students), before -> after; "hits": the share of recordings where the probability rose >= 1.5x and by >= 0.05,
  for judge-deep and for the mean of all held-out judges;
* specific: the share of recordings where judge-deep hears more of the tag after this dream than after the
  dream toward the rival tag of the same tag set (jazz <-> metal, piano <-> guitar), same lever;
* kept: correlation of chroma and of the onset envelope with the input's (the song stays recognisable);
* retention of the dream through resynthesis (dreamfx.validate.metrics; the dreaming model's objective); offline RTF;
  for whole chains as shipped, smoothness: the perturbation SNR under 1e-7 of input noise (first 3 s).

Then the four presets as shipped, whole chains, on the same recordings; with ``--chains``, also each preset's chain
with stages after the dream removed (:data:`CHAINS`): what in a chain takes away what the dream gives.

    python benchmarks/transfer.py [--split test] [--packages xmoto-data] [--recordings N] [--seconds 8] [--jobs 2]
                                  [--chains all] [--variants benchmarks/reports/issue31-variants.json]
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import click
import numpy as np
import torch
from common import machine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # training/ (the recordings' split)

from dreamfx import Chain, DreamEffect  # noqa: E402
from dreamfx.validate.metrics import measure_retention, perturbation_snr  # noqa: E402
from dreamfx.plugin.presets import load_preset  # noqa: E402
from dreamfx.testing.transfer import TAG_SETS, judges_of, kept, load_judges  # noqa: E402
from training.real_recordings import package_of, read_recording, recording_seconds, recordings  # noqa: E402

SAMPLE_RATE = 44100
TAGS = {"msd:jazz": "msd-jazz", "msd:metal": "msd-metal", "mtt:piano": "mtt-piano",
        "mtt:guitar": "mtt-guitar"}  # tag -> its preset
RIVAL = {"msd:jazz": "msd:metal", "msd:metal": "msd:jazz", "mtt:piano": "mtt:guitar",
         "mtt:guitar": "mtt:piano"}
TAGGER = {tag_set: model for model, tag_set in TAG_SETS.items()}  # the tag set's VGG, a lever's "tagger"
ROBUST, PLAIN = "tags-robust", "tags-plain"
TRANSFORMS = {"samples": 4, "shift_bins": 3, "gain_db": 3.0, "tilt_db": 1.5, "noise_db": 2.0}
BEFORE = {"ensemble": None, "transforms": None, "smooth_bins": 2, "smooth_frames": 1, "octaves": 1, "iterations": 6,
          "step": 0.15}  # the tagger presets' dream settings before issue 22
# lever -> (dreaming model: "tagger" (the tag set's VGG), a student, or "preset" (the preset's own networks),
# overrides of the preset's dream settings)
LEVERS = {
    "none (the taggers' presets before)": ("tagger", BEFORE),
    "prior: smooth 16 x 8 in 3 octaves": ("tagger", {**BEFORE, "smooth_bins": 16, "smooth_frames": 8, "octaves": 3}),
    "transforms": ("tagger", {**BEFORE, "transforms": TRANSFORMS}),
    "ensemble: tagger + plain student": ("tagger", {**BEFORE, "ensemble": {PLAIN: 1.0}}),
    "ensemble: tagger + plain x3 + robust": ("tagger", {**BEFORE, "ensemble": {PLAIN: 3.0, ROBUST: 1.0},
                                                        "iterations": 10, "step": 0.2}),
    "robust student alone": (ROBUST, {**BEFORE, "iterations": 10, "step": 0.2}),
    "robust student + transforms": (ROBUST, {**BEFORE, "iterations": 10, "step": 0.2, "transforms": TRANSFORMS}),
    "plain student alone": (PLAIN, {**BEFORE, "iterations": 10, "step": 0.2}),
    "students: plain + robust x0.5": (PLAIN, {**BEFORE, "ensemble": {ROBUST: 0.5}, "iterations": 10, "step": 0.2}),
    "students + transforms": (PLAIN, {**BEFORE, "ensemble": {ROBUST: 0.5}, "iterations": 10, "step": 0.2,
                                      "transforms": TRANSFORMS}),
    "the presets' dream now": ("preset", {}),
    "the presets' dream, 16 iterations": ("preset", {"iterations": 16}),
}
# Whole-chain variants: "preset" (as shipped) and the preset with these plugins removed from its chain.  (Until
# the presets' peak limiter replaced pedalboard's Limiter, also "without Limiter and ceiling" and "with a peak
# limiter": commit 5507a68.)
CHAINS = {"preset": (), "preset without Reverb": ("Reverb",), "preset without Distortion": ("Distortion",),
          "preset without Compressor": ("Compressor",), "preset without Clipping": ("Clipping",)}
JUDGES = ["judge-deep", "msd-vgg", "mtt-vgg", "default", ROBUST, PLAIN]
KEPT = 0.7  # the bar for chroma and onset correlation with the input
_cache: dict = {}


def spread(files: list[Path], count: int) -> list[Path]:
    """``count`` of ``files``, evenly spread over them (repeating them when there are fewer)."""
    return [files[round(i * (len(files) - 1) / max(1, count - 1))] for i in range(count)]


def excerpt(path: Path, seconds: float) -> np.ndarray:
    """``seconds`` of the recording at ``path`` from a third of the way in, (2, samples) at SAMPLE_RATE."""
    return read_recording(path, SAMPLE_RATE, recording_seconds(path) / 3, seconds)


def excerpts(split: str, count: int, seconds: float,
             packages: list[str] | None = None) -> list[tuple[str, np.ndarray]]:
    """``count`` excerpts of ``seconds`` from ``split`` (its ``packages`` only, when given), spread over its
    recordings, a third of the way in."""
    return [(f"{package_of(p).name}/{p.name}", excerpt(p, seconds))
            for p in spread(recordings(split, packages), count)]


def dream_effect(tag: str, lever: str) -> tuple[DreamEffect, set[str]]:
    """The dream stage of ``tag``'s preset with ``lever``'s settings (None: the setting removed), and the names
    of its networks."""
    model, overrides = LEVERS[lever]
    preset = load_preset(TAGS[tag])
    tag_set, bare = tag.split(":", 1)
    if model != "preset":
        preset.dream.update({"model": TAGGER[tag_set], "target": bare} if model == "tagger" else
                            {"model": model, "target": tag})
    preset.dream.update(overrides)
    preset.dream = {k: v for k, v in preset.dream.items() if v is not None}
    effect = DreamEffect.from_preset(preset)
    return effect, {effect.model_source, *(effect.ensemble or {})}


def chain_variant(name: str, variant: str):
    """Preset ``name`` with the plugins of ``CHAINS[variant]`` removed from its chain (for a whole-chain variant
    of ``--variants``: also its dream settings changed)."""
    preset = load_preset(name)
    removed, settings = CHAINS[variant], _cache.get("variants", {}).get(variant, {}).get("dream", {})
    preset.chain = [stage for stage in preset.chain if stage["plugin"] not in removed]
    preset.dream = {k: v for k, v in {**preset.dream, **settings}.items() if v is not None}
    return preset


def add_variants(path: Path) -> list[tuple[str, str]]:
    """Variants of the presets from a JSON file, ``{name: {"tag": "mtt:guitar", "dream": {settings, null removes},
    "drop": [plugins]}}``: each as a lever (its dream stage) and as a whole chain ("chain: " + name).  Returns
    (name, tag) of each."""
    variants = json.loads(path.read_text())
    for name, v in variants.items():
        LEVERS[name] = ("preset", v.get("dream", {}))
        CHAINS["chain: " + name] = tuple(v.get("drop", ()))
    _cache["variants"] = {"chain: " + name: v for name, v in variants.items()}
    return [(name, v["tag"]) for name, v in variants.items()]


def measure(task: tuple) -> dict:
    """One render and its verdicts: task = (recording index, tag, lever or a key of CHAINS)."""
    torch.set_num_threads(1)
    index, tag, lever = task
    name, audio = _cache["excerpts"][index]
    started = time.perf_counter()
    smooth = float("nan")
    if lever in CHAINS:
        chain = Chain.from_preset(chain_variant(TAGS[tag], lever))
        dreamers = {chain.dream_effects[0].model_source, *(chain.dream_effects[0].ensemble or {})}
        out, retention = chain(audio, SAMPLE_RATE), float("nan")
        if lever == "preset":  # as shipped: smooth under 1e-7 of input noise, on the excerpt's first 3 s
            smooth = perturbation_snr(lambda a: Chain.from_preset(TAGS[tag])(a, SAMPLE_RATE),
                                      audio[:, :3 * SAMPLE_RATE])
    else:
        effect, dreamers = dream_effect(tag, lever)
        report = measure_retention(effect, audio, SAMPLE_RATE)
        out, retention = report.output, report.retention
    seconds = time.perf_counter() - started
    judges = _cache["judges"]
    dreamer = next(j for j in judges if j.name in dreamers)
    verdicts = {j.name: (dry_probability(index, j, tag), j.probability(out, SAMPLE_RATE, tag))
                for j in [dreamer] + judges_of(tag, dreamers, judges)}
    chroma, onsets = kept(audio, out, SAMPLE_RATE)
    return {"recording": name, "tag": tag, "lever": lever, "dreamer": dreamer.name, "verdicts": verdicts,
            "rival_judge": judges[0].probability(out, SAMPLE_RATE, RIVAL[tag]),
            "kept": (chroma, onsets), "retention": retention, "smooth_db": smooth,
            "rtf": seconds / (audio.shape[1] / SAMPLE_RATE)}


def dry_probability(index: int, judge, tag: str) -> float:
    """``judge``'s probability of ``tag`` on excerpt ``index`` before any dream, judged once per worker."""
    key = (index, judge.name, tag)
    if key not in _cache["dry"]:
        _cache["dry"][key] = judge.probability(_cache["excerpts"][index][1], SAMPLE_RATE, tag)
    return _cache["dry"][key]


def start_worker(split: str, packages: list[str] | None, count: int, seconds: float) -> None:
    _cache.update(excerpts=excerpts(split, count, seconds, packages), judges=load_judges(JUDGES), dry={})


def rises(before: float, after: float) -> bool:
    """The issue's bar for a held-out judge: >= 1.5x and by >= 0.05."""
    return after >= 1.5 * before and after >= before + 0.05


def table(rows: list[dict], group: str, tags: list[str]) -> None:
    """Print one line per ``group`` value (lever or preset) and tag over ``rows``."""
    print(f"| {group} | tag | dreamer before -> after | judge-deep before -> after (hits) | other held-out judges, "
          "after / before | held-out mean: hits | ... and kept >= 0.7 (that recording's chroma and onsets) | specific "
          "| kept chroma / onsets | retention | smooth (dB, lowest) | RTF |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    by_key = {(r["lever"], r["tag"], r["recording"]): r for r in rows}
    for lever in dict.fromkeys(r["lever"] for r in rows):
        for tag in tags:
            mine = [r for r in rows if r["lever"] == lever and r["tag"] == tag]
            if not mine:
                continue
            held = [{k: v for k, v in r["verdicts"].items() if k != r["dreamer"]} for r in mine]
            d0, d1 = np.mean([r["verdicts"][r["dreamer"]] for r in mine], axis=0)
            j = np.array([h["judge-deep"] for h in held])
            others = sorted({k for h in held for k in h if k != "judge-deep"})
            other_text = ", ".join(f"{k} {np.mean([h[k][1] for h in held]) / np.mean([h[k][0] for h in held]):.2f}x"
                                   for k in others) or "-"
            hits = np.array([rises(*np.mean(list(h.values()), axis=0)) for h in held])
            kept_hits = np.mean(hits & np.array([min(r["kept"]) >= KEPT for r in mine]))
            rivals = [by_key.get((lever, RIVAL[tag], r["recording"])) for r in mine]
            specific = np.mean([r["verdicts"]["judge-deep"][1] > rival["rival_judge"]
                                for r, rival in zip(mine, rivals)]) if all(rivals) else float("nan")
            chroma, onsets = np.mean([r["kept"] for r in mine], axis=0)
            retention = [r["retention"] for r in mine if r["retention"] == r["retention"]]  # NaN: a whole chain
            smooth = [r["smooth_db"] for r in mine if not np.isnan(r.get("smooth_db", np.nan))]  # whole chains only
            print(f"| {lever} | {tag} | {d0:.3f} -> {d1:.3f} | {j[:, 0].mean():.3f} -> {j[:, 1].mean():.3f} "
                  f"({np.mean([rises(a, b) for a, b in j]):.0%}) | {other_text} | {hits.mean():.0%} | "
                  f"{kept_hits:.0%} | {specific:.0%} | "
                  f"{chroma:.2f} / {onsets:.2f} | {f'{np.mean(retention):.2f}' if retention else '-'} | "
                  f"{f'{min(smooth):.0f}' if smooth else '-'} | "
                  f"{np.mean([r['rtf'] for r in mine]):.2f} |")


@click.command()
@click.option("--split", type=click.Choice(["test", "tune"]), default="test", show_default=True,
              help="test: the verdict (never tuned on); tune: for choosing settings")
@click.option("--recordings", "count", default=0, help="excerpts, spread over the split (default: every recording "
              "of it, 20 of the test split)")
@click.option("--packages", default="", help="only these packages' recordings of the split, comma-separated (the "
              "tune split was xmoto-data alone before commit 31bb8f7)")
@click.option("--seconds", default=8.0, show_default=True)
@click.option("--jobs", default=2, show_default=True)
@click.option("--levers", default=";".join(LEVERS), show_default=False, help="lever names separated by semicolons")
@click.option("--presets/--no-presets", default=True)
@click.option("--tags", "tags_chosen", default=",".join(TAGS), show_default=True, help="comma-separated tags")
@click.option("--chains", "chain_variants", default="", help="also these variants of the presets' chains, separated by "
              "semicolons, or 'all' (CHAINS: without Reverb, without Compressor, ...)")
@click.option("--variants", "variants_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="also these variants of the presets (JSON: name -> tag, dream settings, plugins "
              "dropped), the dream stage and the whole chain, on their tag only (benchmarks/reports/)")
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), default=None, help="raw rows as JSON")
@click.option("--rows", "saved", type=click.Path(exists=True, dir_okay=False, path_type=Path), multiple=True,
              help="print the tables of rows saved before (later files replace earlier rows of the same lever)")
def main(split: str, count: int, packages: str, seconds: float, jobs: int, levers: str, presets: bool,
         tags_chosen: str, chain_variants: str, variants_file: Path | None, save: Path | None,
         saved: tuple[Path, ...]) -> None:
    if saved:
        merged = {}
        for path in saved:
            merged.update({(r["lever"], r["tag"], r["recording"]): r for r in json.loads(path.read_text())})
        rows = list(merged.values())
    else:
        chosen_packages = packages.split(",") if packages else None
        count = count or len(recordings(split, chosen_packages))
        print(f"# transfer: {machine()}; {count} excerpts of {seconds:g} s from the {split} split")
        chosen = [lever for lever in levers.split(";") if lever]
        tags = [tag for tag in TAGS if tag in tags_chosen.split(",")]
        tasks = [(i, tag, lever) for lever in chosen for tag in tags for i in range(count)]
        variants = [v for v in CHAINS if presets and (v == "preset" or chain_variants == "all"
                                                      or v in chain_variants.split(";"))]
        tasks += [(i, tag, v) for v in variants for tag in tags for i in range(count)
                  if v == "preset" or any(s["plugin"] in CHAINS[v] for s in load_preset(TAGS[tag]).chain)]
        if variants_file:
            for name, tag in add_variants(variants_file):
                tasks += [(i, tag, lever) for lever in (name, "chain: " + name) for i in range(count)]
        started = time.time()
        with ProcessPoolExecutor(jobs, initializer=start_worker,
                                 initargs=(split, chosen_packages, count, seconds)) as pool:
            rows = list(pool.map(measure, tasks))
        if save:
            save.write_text(json.dumps(rows, indent=1))
        print(f"{time.time() - started:.0f} s")
    print(f"recordings: {', '.join(dict.fromkeys(r['recording'] for r in rows))}\n")
    whole = [r for r in rows if r["lever"] in CHAINS]
    table([r for r in rows if r["lever"] not in CHAINS], "lever", list(TAGS))
    if whole:
        print()
        table(whole, "preset (whole chain)", list(TAGS))


if __name__ == "__main__":
    main()
