"""The students against their teachers on recordings none of them learned from (issue 31): before and after the
new data, per tag set, and for the tags the new data brings (metal, guitar).

Two sets of held-out windows (2.1 s, the teachers' own windows at 16 kHz):

* the test split of training/real_recordings.py (hyperrogue-music, asc-music: game music), 20 windows each;
* the Muldjord song held out of every training (``mutilated_mime``: its mix and its guitar alone), whole.

A distilled student or the judge hears the whole window (as in training/distill.py); the live student hears
24-frame spans inside it (training/student.py's ``agreement``).  Models are files or shipped names, e.g. the
shipped ones before a retraining, taken from git:

    git show HEAD~5:dreamfx/assets/tags_plain.safetensors > /tmp/before-tags_plain.safetensors
    python benchmarks/agreement.py tags-plain /tmp/before-tags_plain.safetensors ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np
import torch
from common import machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dreamfx.nets.models import load_model  # noqa: E402
from training.distill import (SAMPLE_RATE, TEACHERS, WINDOW_SAMPLES, agreement_scores, teacher_logits,  # noqa: E402
                              window_logmag)
from training.real_recordings import is_held_out, read_mono, recordings  # noqa: E402
from training.student import RATE, SEED, agreement, teacher_windows  # noqa: E402

TAGS = ("msd:metal", "msd:heavy metal", "msd:guitar", "mtt:metal", "mtt:guitar", "mtt:rock")
SETS = {"test split": (lambda: recordings("test"), 20),
        "held-out Muldjord song": (lambda: [p for p in recordings("train", ["fretsonfire-songs-muldjord"])
                                            if is_held_out(p)], 1000)}


def windows_of(paths: list[Path], limit: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(windows at 16 kHz (n, WINDOW_SAMPLES), the same spans at the live student's rate (n, SPAN), the teachers'
    probabilities (n, 100)) of at most ``limit`` windows of each recording."""
    teachers = [load_model(name) for name in TEACHERS]
    for t in teachers:
        t.configure(SAMPLE_RATE)
    slow, fast, targets = [], [], []
    for path in paths:
        mine, theirs = teacher_windows(read_mono(path, RATE), limit)
        if len(mine):
            fast.append(torch.from_numpy(mine))
            slow.append(torch.from_numpy(theirs))
            targets.append(torch.sigmoid(teacher_logits(teachers, theirs)))
    return torch.cat(slow), torch.cat(fast), torch.cat(targets)


def scores(model_name: str, slow: torch.Tensor, fast: torch.Tensor, targets: torch.Tensor) -> dict:
    """:func:`agreement_scores` of one model on the windows (the live student: on spans of them)."""
    model = load_model(model_name)
    if model.meta.get("training", {}).get("script") == "training/student.py":  # the live student: 0.28 s spans
        return agreement(model, fast, targets, np.random.default_rng(SEED + 2), tags=TAGS)
    cfg = model.configure(SAMPLE_RATE)
    with torch.no_grad():
        probs = torch.cat([torch.sigmoid(model(window_logmag(slow[i:i + 64], cfg))) for i in range(0, len(slow), 64)])
    return agreement_scores(probs, targets, TAGS)


@click.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), help="all scores as JSON")
def main(models: tuple[str, ...], save: Path | None) -> None:
    """Agreement of MODELS (shipped names or files) with the teachers on the held-out sets."""
    torch.set_num_threads(1)
    print(f"# agreement: {machine()}")
    result = {}
    for set_name, (paths, limit) in SETS.items():
        slow, fast, targets = windows_of(paths(), limit)
        for model in models:
            result[set_name, model] = scores(model, slow, fast, targets)
        print(f"\n## {set_name}: {len(slow)} windows")
        print("| model | teacher | across windows (50 tags) | top tag in top 5 | rank corr. (constant) | " +
              " | ".join(TAGS) + " |")
        print("|---|---|---|---|---|" + "---|" * len(TAGS))
        for model in models:
            for teacher, s in result[set_name, model].items():
                tags = s.get("tags", {})
                cells = " | ".join(f"{tags[t]['across_windows']:.2f} ({tags[t]['student_mean']:.2f} / "
                                   f"{tags[t]['teacher_mean']:.2f})" if t in tags else "" for t in TAGS)
                print(f"| {model} | {teacher} | {s['across_windows']:.3f} | {s['teacher_top_in_top5']:.1%} | "
                      f"{s['rank_correlation']:.3f} ({s['constant_rank_correlation']:.3f}) | {cells} |")
    print("\nper tag: correlation across windows (student's mean / teacher's mean probability)")
    if save:
        save.write_text(json.dumps({f"{k[0]} | {k[1]}": v for k, v in result.items()}, indent=1))


if __name__ == "__main__":
    main()
