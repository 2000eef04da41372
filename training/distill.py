"""Distil the real-music taggers (msd-vgg, mtt-vgg) into networks of other architectures, on real recordings.

Read top to bottom: configuration, the teachers' cache, the networks, the training loop, held-out agreement, save.

    python -m training.distill cache data/distill           # teachers' tags on the train split (~5 min, 2 cores)
    python -m training.distill train data/distill --kind robust -o dreamfx/assets/tags_robust.safetensors
    python -m training.distill train data/distill --kind plain -o dreamfx/assets/tags_plain.safetensors
    python -m training.distill train data/distill --kind judge -o tests/data/judge_deep.safetensors

Students learn the 100 tag probabilities of both teachers (``msd:<tag>``, ``mtt:<tag>``) on 2.1 s windows of
the train split of :mod:`training.real_recordings`, four of its packages (:data:`DISTILL_PACKAGES`: three of game
music and, since issue 31, Muldjord's metal, mixes and guitar stems; tune and test recordings are never seen).
``cache --renders`` adds FluidSynth renders (General MIDI soundfont) of the
eight synthetic genres and of solos on :data:`training.genres.TRAINING_INSTRUMENTS` (game music holds almost no
jazz or lone acoustic instruments).
Measured on the tune split (issue 22), students trained with them made whole-chain dreams that the held-out
judges heard no more often (hits summed over the four tags: 143 % both ways), so the shipped students are trained
without them.  Two more levers, measured and not shipped (BENCHMARKS.md, "Two more levers for the students"):
``cache --mixes N`` mixes each isolated guitar into N other train recordings (the teachers label guitar heard
within other music), ``train --adversary-db`` widens the robust student's adversary.

* ``robust``: dreams in ensembles with the taggers (same STFT, so one dream step serves all).  Trained
  adversarially in the log-magnitude domain (each batch also through the worst change within +-ADV_DB dB,
  ``--adversary-db``, found by one signed-gradient step from a random start, Wong et al. 2020's fast adversarial
  training), so that its input gradient points at changes of the sound rather than at its own blind spots (Madry
  et al. 2018; Santurkar et al. 2019).
* ``plain``: the robust student's architecture trained without the adversary (the lever's control).
* ``judge``: never dreams; a deeper network on another STFT (22.05 kHz, n_fft 1024) for judging dreams made by
  other networks.  Its mel bands end at 8 kHz, as the 16 kHz windows it learns from do: with bands up to
  11 kHz that training never filled, it heard a tenth of its teachers' tags in 44.1 kHz audio and each sound
  change as another tag (``python benchmarks/judge.py``).  It hears the real recordings only (the sources come
  first in the cache, so its held-out recordings and its training are those of the cache without renders).
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from pathlib import Path

import click
import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F

from dreamfx.nets.models import DreamNet, build_metadata, load_model, save_model
from dreamfx.dsp.spectral import StftConfig, log_magnitude, stft
from training.real_recordings import is_held_out, package_of, read_mono, recording_name, recordings
from training.render_dataset import SOUNDFONT_LICENCE, render_clips

# ---- configuration --------------------------------------------------------
SEED = 2026
SAMPLE_RATE = 16000
TEACHERS = ("msd-vgg", "mtt-vgg")
WINDOW_FRAMES = 260            # the taggers' dream window (chunk 128 + context 132 frames of hop 128)
TEACHER_STFT = StftConfig(SAMPLE_RATE, 512, 128)
WINDOW_SAMPLES = (WINDOW_FRAMES - 1) * TEACHER_STFT.hop + TEACHER_STFT.n_fft
MAX_WINDOWS_PER_RECORDING = 40  # windows every WINDOW_SAMPLES, from the start
RENDER_SEED = 3026             # compositions of the renders (the genre data set uses 2026, the live student 2027)
RENDER_SECONDS = 4 * WINDOW_SAMPLES / SAMPLE_RATE + 0.2  # a render: four windows
GENRE_CLIPS, SOLO_CLIPS = 15, 6  # per synthetic genre, per training instrument
DISTILL_PACKAGES = ("warzone2100-music", "supertux-data", "drascula-music",  # the students' and judge's recordings
                    "fretsonfire-songs-muldjord")
HOLDOUT_EVERY = 10             # every 10th source, and those a package holds out: held out to measure agreement
EPOCHS = {"robust": 6, "plain": 6, "judge": 6}
BATCH = 32
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 1e-3
GAIN_JITTER_DB = 6.0           # random level change per example (the teachers' tags barely move with level)
RENDER_KINDS = ("genre", "solo")  # the kinds of cache sources that are FluidSynth renders
MIX_DB = (-12.0, 0.0)          # --mixes: a guitar stem's level against the music it is mixed into (RMS), dB
MIX_WINDOWS = 40               # --mixes: windows of one (stem, recording) mix
ADV_DB = 3.0                   # robust training: L-inf radius of the adversarial change, dB
# (STFT, frontend, architecture, pools over (freq, time) per block: the 260-frame window reaches the head whole)
STUDENT = (TEACHER_STFT, {"frontend": "mel_in_the_loop", "n_mels": 64, "fmin": 30.0, "fmax": 8000.0}, "compact",
           [[2, 2, 2, 2], [2, 2, 2, 2], [2, 3, 2, 2], None])
LICENCE = ("Trained by dreamfx (training/distill.py) on the tag probabilities of musicnn 0.1.0's MSD_vgg and "
           "MTT_vgg (ISC licence, Music Technology Group, Universitat Pompeu Fabra: see LICENSE-musicnn.txt beside "
           "this file), heard on Debian recordings listed in training.recordings, each under its own licence")
RENDERS_LICENCE = f", and on FluidSynth renders with the {SOUNDFONT_LICENCE}"
KINDS = {
    "robust": STUDENT,
    "plain": STUDENT,
    "judge": (StftConfig(22050, 1024, 256), {"frontend": "mel_in_the_loop", "n_mels": 80, "fmin": 30.0,
                                             "fmax": 8000.0}, "deep", None),
}


# ---- the teachers' cache ---------------------------------------------------
def teacher_tags() -> list[str]:
    """The students' outputs: ``msd:<tag>`` then ``mtt:<tag>``."""
    return [f"{name.split('-')[0]}:{tag}" for name in TEACHERS for tag in load_model(name).class_names]


def window_logmag(audio: torch.Tensor, cfg: StftConfig) -> torch.Tensor:
    """(B, samples) audio -> (B, n_bins, frames) natural-log magnitude on ``cfg``, a network's STFT configured
    for the audio's rate (its frame duration and bin spacing kept; 16 kHz here, 22.05 kHz in training/student.py)."""
    return log_magnitude(stft(audio, cfg))


@click.group()
def main() -> None:
    """Distil the taggers into a robust student or a judge."""


@main.command()
@click.argument("cache", type=click.Path(file_okay=False, path_type=Path))
@click.option("--renders", is_flag=True, help="Also FluidSynth renders of the genres and of solo instruments "
              "(the shipped students are trained without).")
@click.option("--mixes", default=0, show_default=True, help="Also each isolated guitar of the train split mixed "
              "into this many other train recordings (the shipped students are trained without).")
def cache(cache: Path, renders: bool, mixes: int) -> None:
    """Render the clips, cut them and the train split into windows, store them with both teachers' logits in
    CACHE/teachers.safetensors and the sources (with their licences) in CACHE/sources.json."""
    torch.manual_seed(SEED)
    started = time.time()
    sources = train_recordings()
    sources += guitar_mixes(sources, mixes, np.random.default_rng(SEED))
    if renders:
        sources += render_clips(cache / "renders", SAMPLE_RATE, RENDER_SEED, RENDER_SECONDS, GENRE_CLIPS,
                                SOLO_CLIPS)

    def cut(clip: dict, limit: int) -> tuple[np.ndarray, np.ndarray]:
        audio = read_mono(Path(clip["path"]), SAMPLE_RATE)
        if clip["kind"] == "mix":
            audio = mixed(audio, read_mono(Path(clip["stem"]), SAMPLE_RATE), clip)
        count = min(limit, len(audio) // WINDOW_SAMPLES)
        windows = audio[:count * WINDOW_SAMPLES].reshape(count, WINDOW_SAMPLES)
        return windows, windows  # the students hear the teachers' own windows

    cache_teachers(cache, sources, cut, started)


def guitar_mixes(sources: list[dict], count: int, rng: np.random.Generator) -> list[dict]:
    """Cache sources that mix each isolated guitar of ``sources`` (Muldjord's ``guitar.ogg``, held-out songs left
    out) into ``count`` random other recordings of them (not Muldjord's), at a random level within MIX_DB and
    from a random point of the stem: the teachers label guitar heard within other music."""
    stems = [s for s in sources if s["name"].endswith("guitar") and not s["held_out"]]
    music = [s for s in sources if s["package"] not in {t["package"] for t in stems}]
    mixes = []
    for stem in stems:
        for index in rng.choice(len(music), count, replace=False):
            other = music[index]
            mixes.append({"name": f"{other['name']} + {stem['name']}", "path": other["path"], "stem": stem["path"],
                          "kind": "mix", "package": other["package"], "licence": f"{other['licence']}; "
                          f"{stem['licence']}", "held_out": False, "level_db": round(float(rng.uniform(*MIX_DB)), 1),
                          "stem_start": round(float(rng.uniform()), 3)})
    return mixes


def mixed(music: np.ndarray, stem: np.ndarray, mix: dict) -> np.ndarray:
    """(samples,) ``music`` with the guitar ``stem`` (its part from ``mix["stem_start"]`` of its length on, looped)
    added at ``mix["level_db"]`` of the music's RMS; as long as MIX_WINDOWS windows at most."""
    length = min(len(music), MIX_WINDOWS * WINDOW_SAMPLES)
    start = int(mix["stem_start"] * len(stem))
    part = np.resize(np.roll(stem, -start), length)
    ratio = np.sqrt(np.mean(music[:length] ** 2) / max(np.mean(part ** 2), 1e-12))
    return music[:length] + part * ratio * 10 ** (mix["level_db"] / 20)


def train_recordings(packages: Collection[str] | None = DISTILL_PACKAGES) -> list[dict]:
    """The train split's recordings (of ``packages``; None: all) as cache sources: name, path, kind "real",
    package, licence, and whether the package holds it out of training."""
    return [{"name": recording_name(p), "path": str(p), "kind": "real", "package": package_of(p).name,
             "licence": package_of(p).licence, "held_out": is_held_out(p)} for p in recordings("train", packages)]


def held_out_windows(source: torch.Tensor, sources: list[dict]) -> np.ndarray:
    """(n,) bool: the windows (of ``source`` indices into ``sources``) that no student trains on: every
    HOLDOUT_EVERY-th source's, and those of the recordings their package holds out (a whole Muldjord song)."""
    held = np.array([s.get("held_out", False) for s in sources])
    index = source.numpy()
    return (index % HOLDOUT_EVERY == HOLDOUT_EVERY - 1) | held[index]


def teacher_logits(teachers: list[DreamNet], windows: np.ndarray) -> torch.Tensor:
    """Both teachers' logits (n, 100) of (n, WINDOW_SAMPLES) windows at 16 kHz."""
    with torch.no_grad():
        logmag = window_logmag(torch.from_numpy(windows), TEACHER_STFT)
        return torch.cat([t(logmag) for t in teachers], dim=1)


def cache_teachers(cache: Path, sources: list[dict], cut, started: float) -> None:
    """Store every source's windows with both teachers' logits in CACHE/teachers.safetensors (windows in half
    precision, logits (n, 100), the source's index) and the sources in CACHE/sources.json.  ``cut(source,
    limit)`` -> (the student's windows (n, samples) at its rate, the same spans (n, WINDOW_SAMPLES) at 16 kHz),
    at most ``limit`` of them: MAX_WINDOWS_PER_RECORDING of a recording (or its package's ``max_windows``), 4 of a
    render."""
    teachers = [load_model(name) for name in TEACHERS]
    for t in teachers:
        t.configure(SAMPLE_RATE)
    windows, logits, source = [], [], []
    with click.progressbar(list(enumerate(sources)), label="teachers' tags") as bar:
        for index, clip in bar:
            limit = 4 if clip["kind"] in RENDER_KINDS else \
                package_of(Path(clip["path"])).max_windows or MAX_WINDOWS_PER_RECORDING
            mine, theirs = cut(clip, limit)
            if len(mine) == 0:
                continue
            logits.append(teacher_logits(teachers, theirs))
            windows.append(torch.from_numpy(mine).half())
            source += [index] * len(mine)
    cache.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file({"windows": torch.cat(windows), "logits": torch.cat(logits),
                                 "source": torch.tensor(source)}, str(cache / "teachers.safetensors"))
    (cache / "sources.json").write_text(json.dumps(sources, indent=1))
    click.echo(f"{len(source)} windows of {len(sources)} clips in {time.time() - started:.0f} s -> {cache}")


# ---- the networks ------------------------------------------------------------
def student(kind: str, tags: list[str]) -> DreamNet:
    """A new network of ``kind`` ("robust" or "judge") with ``tags`` as its classes."""
    cfg, frontend, architecture, pools = KINDS[kind]
    front = dict(frontend)
    meta = build_metadata(tags, frontend=front.pop("frontend"), architecture=architecture, sample_rate=cfg.sample_rate,
                          n_fft=cfg.n_fft, hop=cfg.hop, **front)
    meta["task"] = "tagging"
    if pools is not None:
        meta["pools"] = pools
    if kind != "judge":
        meta["dream_window"] = {"chunk_frames": 128, "context_frames": 132}  # the taggers' own window
    return DreamNet(meta)


def adversarial(model: DreamNet, logmag: torch.Tensor, target: torch.Tensor,
                radius_db: float = ADV_DB) -> torch.Tensor:
    """``logmag`` plus the change within +-radius_db that most raises the loss: one signed-gradient step of 1.25
    radii from a uniform random start, clipped to the radius (Wong et al. 2020)."""
    radius = radius_db / 20 * float(np.log(10))
    delta = ((torch.rand_like(logmag) * 2 - 1) * radius).requires_grad_(True)
    loss = F.binary_cross_entropy_with_logits(model(logmag + delta), target)
    (grad,) = torch.autograd.grad(loss, delta)
    return logmag + (delta.detach() + 1.25 * radius * grad.sign()).clamp(-radius, radius)


def level_jitter(count: int, rng: np.random.Generator) -> torch.Tensor:
    """A random level within +-GAIN_JITTER_DB for each of ``count`` windows: (count, 1, 1), natural-log
    magnitude, to add to a (count, n_bins, frames) log-magnitude."""
    return torch.from_numpy(rng.uniform(-1, 1, (count, 1, 1)).astype(np.float32)) * GAIN_JITTER_DB / 20 \
        * float(np.log(10))


def descend(optimizer: torch.optim.Optimizer, schedule: torch.optim.lr_scheduler.LRScheduler,
            loss: torch.Tensor) -> float:
    """One optimiser step down ``loss`` (and one of the learning-rate schedule); the loss's value."""
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()
    return loss.item()


# ---- training ----------------------------------------------------------------
@main.command()
@click.argument("cache", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(list(KINDS)), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--epochs", type=int, default=None, help="default: EPOCHS[kind]")
@click.option("--adversary-db", type=float, default=ADV_DB, show_default=True,
              help="robust: L-inf radius of the adversarial change, dB")
def train(cache: Path, kind: str, output: Path, epochs: int | None, adversary_db: float) -> None:
    """Train a student of KIND on the teachers' tags in CACHE and write it to OUTPUT."""
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    started = time.time()
    epochs = epochs or EPOCHS[kind]
    data = safetensors.torch.load_file(str(cache / "teachers.safetensors"))
    sources = json.loads((cache / "sources.json").read_text())
    if kind == "judge":  # the judge hears real recordings only, whatever the dreamers learn from
        sources = [s for s in sources if s["kind"] == "real"]
        data = {k: v[data["source"] < len(sources)] for k, v in data.items()}
    rendered = any(s["kind"] in RENDER_KINDS for s in sources)
    mixes = any(s["kind"] == "mix" for s in sources)
    held_out = held_out_windows(data["source"], sources)
    train_idx, test_idx = np.flatnonzero(~held_out), np.flatnonzero(held_out)
    targets = torch.sigmoid(data["logits"])
    model = student(kind, teacher_tags())
    cfg = model.configure(SAMPLE_RATE)

    def inputs(indices) -> torch.Tensor:
        return window_logmag(data["windows"][indices].float(), cfg)

    steps = len(train_idx) // BATCH
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, LEARNING_RATE, total_steps=epochs * steps)
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(train_idx)
        losses = []
        for s in range(steps):
            batch = order[s * BATCH:(s + 1) * BATCH]
            x, y = inputs(batch) + level_jitter(len(batch), rng), targets[batch]
            loss = F.binary_cross_entropy_with_logits(model(x), y)
            if kind == "robust":
                worst = adversarial(model, x, y, adversary_db)
                loss = 0.5 * loss + 0.5 * F.binary_cross_entropy_with_logits(model(worst), y)
            losses.append(descend(optimizer, schedule, loss))
        click.echo(f"epoch {epoch + 1:3d}/{epochs}  loss {np.mean(losses):.4f}  ({time.time() - started:.0f} s)")
    model.eval()
    agreement = agreement_with_teachers(model, inputs, targets, test_idx)
    model.meta["training"] = {
        "teachers": list(TEACHERS),
        "data": "train split of training/real_recordings.py" + (
            " and FluidSynth renders (training/genres.py)" if rendered else "") + (
            ", its isolated guitars also mixed into its other recordings" if mixes else ""),
        "recordings": [{k: v for k, v in s.items() if k != "path" or s["kind"] not in RENDER_KINDS}
                       for s in sources],
        "windows": len(train_idx), "held_out_windows": len(test_idx), "held_out_every": HOLDOUT_EVERY,
        "seed": SEED, "epochs": epochs, "batch": BATCH, "gain_jitter_db": GAIN_JITTER_DB,
        "adversarial": {"radius_db": adversary_db, "method": "FGSM, random start"} if kind == "robust" else None,
        "held_out_agreement": agreement, "train_seconds": round(time.time() - started, 1),
        "torch": torch.__version__,
    }
    model.meta["licence"] = LICENCE + (RENDERS_LICENCE if rendered else "") + "."
    output.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, output)
    click.echo(json.dumps(agreement, indent=1))
    click.echo(f"{kind} written to {output} in {time.time() - started:.0f} s")


def agreement_with_teachers(model: DreamNet, inputs, targets: torch.Tensor, indices: np.ndarray) -> dict:
    """On held-out windows: mean Spearman correlation of the tag probabilities with the teachers' (per tag
    set), and how often the teacher's top tag is in the student's top 5."""
    with torch.no_grad():
        probs = torch.cat([torch.sigmoid(model(inputs(indices[i:i + 64]))) for i in range(0, len(indices), 64)])
    return agreement_scores(probs, targets[indices])


def agreement_scores(probs: torch.Tensor, targets: torch.Tensor, tags: Collection[str] = ()) -> dict:
    """Per teacher, over rows (windows) of (n, 100) student and teacher probabilities:

    * ``rank_correlation``: the Spearman correlation of its 50 tags in a window, averaged over windows;
      ``constant_rank_correlation``: the same for a constant, the teachers' mean over these windows (the tags'
      prior alone scores high here: what the student adds is the difference);
    * ``teacher_top_in_top5``: how often the teacher's top tag is in the student's top 5;
    * ``across_windows``: per tag, the Spearman correlation of the student's and the teacher's probability across
      the windows, averaged over the 50 tags (0 for any constant): does the student hear a tag rise where the
      teacher does, what a dream toward that tag needs; for each of ``tags`` (``msd:metal``) of this teacher,
      the same correlation alone, with the tag's mean probability by teacher and student (``tags``)."""
    from scipy.stats import spearmanr
    result = {}
    for t, name in enumerate(TEACHERS):
        mine, theirs = probs[:, 50 * t:50 * (t + 1)].numpy(), targets[:, 50 * t:50 * (t + 1)].numpy()
        prior = theirs.mean(axis=0)
        rho = np.mean([spearmanr(a, b)[0] for a, b in zip(mine, theirs)])
        constant = np.mean([spearmanr(prior, b)[0] for b in theirs])
        top5 = np.mean([np.argmax(b) in np.argsort(-a)[:5] for a, b in zip(mine, theirs)])
        across = np.mean([np.nan_to_num(spearmanr(a, b)[0]) for a, b in zip(mine.T, theirs.T)])  # constant: 0
        result[name] = {"rank_correlation": round(float(rho), 3),
                        "constant_rank_correlation": round(float(constant), 3),
                        "teacher_top_in_top5": round(float(top5), 3), "across_windows": round(float(across), 3)}
        names = teacher_tags()[50 * t:50 * (t + 1)]
        for tag in (tag for tag in tags if tag in names):
            i = names.index(tag)
            result[name].setdefault("tags", {})[tag] = {
                "across_windows": round(float(np.nan_to_num(spearmanr(mine[:, i], theirs[:, i])[0])), 3),
                "teacher_mean": round(float(theirs[:, i].mean()), 3), "student_mean": round(float(mine[:, i].mean()), 3)}
    return result


if __name__ == "__main__":
    main()
