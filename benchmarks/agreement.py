"""The students against their teachers on recordings none of them learned from (issue 31): before and after the
new data, per tag set, and for the tags the new data brings (metal, guitar).

Two sets of held-out windows (2.1 s, the teachers' own windows at 16 kHz):

* the test split of training/real_recordings.py (hyperrogue-music, asc-music: game music), 20 windows each;
* the Muldjord song held out of every training (``mutilated_mime``: its mix and its guitar alone), whole.

A distilled student or the judge hears the whole window (as in training/distill.py); the live student hears
24-frame spans inside it (training/student.py's ``recordings_agreement``).  Models are files or shipped names,
e.g. the shipped ones before a retraining, taken from git:

    git show HEAD~5:dreamfx/assets/tags_plain.safetensors > /tmp/before-tags_plain.safetensors
    python benchmarks/agreement.py tags-plain /tmp/before-tags_plain.safetensors ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import torch
from common import machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dreamfx.nets.models import load_model  # noqa: E402
from training.real_recordings import recordings  # noqa: E402
from training.student import held_out_song_agreement, recordings_agreement  # noqa: E402

TAGS = ("msd:metal", "msd:heavy metal", "msd:guitar", "mtt:metal", "mtt:guitar", "mtt:rock")
SETS = {"test split": lambda model: recordings_agreement(model, recordings("test"), 20, tags=TAGS),
        "held-out Muldjord song": lambda model: held_out_song_agreement(model, TAGS)}


@click.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), help="all scores as JSON")
def main(models: tuple[str, ...], save: Path | None) -> None:
    """Agreement of MODELS (shipped names or files) with the teachers on the held-out sets."""
    torch.set_num_threads(1)
    print(f"# agreement: {machine()}")
    result = {}
    for set_name, measure in SETS.items():
        print(f"\n## {set_name}")
        print("| model | teacher | across windows (50 tags) | top tag in top 5 | rank corr. (constant) | " +
              " | ".join(TAGS) + " |")
        print("|---|---|---|---|---|" + "---|" * len(TAGS))
        for model in models:
            result[f"{set_name} | {model}"] = scores = measure(load_model(model))
            for teacher, s in scores.items():
                tags = s.get("tags", {})
                cells = " | ".join(f"{tags[t]['across_windows']:.2f} ({tags[t]['student_mean']:.2f} / "
                                   f"{tags[t]['teacher_mean']:.2f})" if t in tags else "" for t in TAGS)
                print(f"| {model} | {teacher} | {s['across_windows']:.3f} | {s['teacher_top_in_top5']:.1%} | "
                      f"{s['rank_correlation']:.3f} ({s['constant_rank_correlation']:.3f}) | {cells} |")
    print("\nper tag: correlation across windows (student's mean / teacher's mean probability)")
    if save:
        save.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
