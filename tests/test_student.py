"""The live student of the taggers (``tags-live``, training/student.py, issue 24): it hears General MIDI solo
instruments it was not trained on as the tagger does, its tags rise where its teachers' do on real recordings it
never heard, and ``dreamfx live`` starts on a real-music preset."""

from __future__ import annotations

import numpy as np

from dreamfx.nets.models import load_model
from dreamfx.plugin.presets import load_preset
from conftest import cli_output, require_system
from training.real_recordings import recordings


def test_the_live_student_hears_solo_instruments(measured):
    """Eight FluidSynth solos (seeds training never used), heard in 0.28 s spans: the instrument's own
    MagnaTagATune tag is in the student's top 5 for at least 6 of 8 (the issue's bar)."""
    require_system("fluidsynth", "fluidsynth fluid-soundfont-gm")
    from training.student import solo_ranks
    ranks = solo_ranks(load_model("tags-live"))
    measured(f"tags-live on FluidSynth solos (24-frame spans), rank of the instrument's tag: {ranks}")
    assert sum(rank <= 5 for rank in ranks.values()) >= 6, ranks


def test_the_live_student_hears_tags_rise_where_its_teachers_do(measured):
    """The three asc-music recordings (test split: never trained on), 2.1 s windows, the student on 0.28 s spans
    inside them: per tag, its probability and the teacher's correlate across the windows (Spearman, averaged over
    each tag set's 50 tags; any constant scores 0, an untrained student 0.03 / -0.02, tags-live 0.48 / 0.39 when
    written), and the teacher's top tag is in the student's top 5 in >= 80 % of windows (the issue's bar)."""
    if not recordings("test", ["asc-music"]):
        require_system("/usr/share/games/asc/music", "asc-music")
    from training.student import test_split_agreement
    scores = test_split_agreement(load_model("tags-live"), packages=["asc-music"])
    measured(f"tags-live against its teachers on asc-music: {scores}")
    for teacher in ("msd-vgg", "mtt-vgg"):
        assert scores[teacher]["across_windows"] >= 0.25, (teacher, scores[teacher])
        assert scores[teacher]["teacher_top_in_top5"] >= 0.8, (teacher, scores[teacher])


def test_live_starts_on_a_real_music_preset():
    """Without --preset, ``dreamfx live`` plays live-jazz: the live student dreaming toward jazz, at the
    quarter-size chunks of a live preset."""
    output = cli_output("live", "--help")
    assert "[default: live-jazz]" in output, output
    dream = load_preset("live-jazz").dream
    assert dream["model"] == "tags-live" and dream["target"] == "msd:jazz" and dream["chunk_frames"] == 2


def test_the_retrained_students_and_judge_name_muldjord_and_its_licence():
    """Issue 31: the distilled students, the live student and the judge learned metal and guitar from Muldjord's
    songs (Debian's fretsonfire-songs-muldjord); ``dreamfx info`` says so, with the licence."""
    from dreamfx.testing.transfer import JUDGE_FILE
    for model in ("tags-plain", "tags-robust", "tags-live", str(JUDGE_FILE)):
        line = next(line for line in cli_output("info", model).splitlines() if line.startswith("real recordings"))
        assert "fretsonfire-songs-muldjord, CC-BY-SA-3.0 (four songs by the Danish metal band Muldjord" in line, line


def test_the_students_hear_metal_in_a_song_they_never_heard(measured):
    """The Muldjord song held out of every training (its mix and its guitar alone, the first 40 windows of 2.1 s
    of each: the suite's time; benchmarks/agreement.py hears the whole song): the teachers' top tag is in the
    student's top 5 in >= 80 % of windows for both tag sets (before the students learned from Muldjord's other
    songs: 19-23 %), and the student hears at least half of the metal its MSD teacher hears (mean probability;
    before: a tenth)."""
    if not recordings("train", ["fretsonfire-songs-muldjord"]):
        require_system("/usr/share/games/fretsonfire/data/songs/muldjord", "fretsonfire-songs-muldjord")
    from training.student import held_out_song_agreement
    for model in ("tags-robust", "tags-live"):
        scores = held_out_song_agreement(load_model(model), ["msd:metal"], limit=40)
        measured(f"{model} against its teachers on the held-out Muldjord song: {scores}")
        for teacher in ("msd-vgg", "mtt-vgg"):
            assert scores[teacher]["teacher_top_in_top5"] >= 0.8, (model, teacher, scores[teacher])
        metal = scores["msd-vgg"]["tags"]["msd:metal"]
        assert metal["student_mean"] >= 0.5 * metal["teacher_mean"], (model, metal)


def test_guitar_mixes_put_each_training_stem_into_other_music_at_its_level():
    """``cache --mixes`` (a measured lever, not shipped): each isolated guitar of the train split, held-out songs
    left out, goes into other packages' recordings, and the stem sits at the drawn level of the music's RMS."""
    from training.distill import MIX_WINDOWS, WINDOW_SAMPLES, guitar_mixes, mixed

    def source(name, package, held_out=False):
        return {"name": name, "path": f"/{package}/{name}.ogg", "kind": "real", "package": package,
                "licence": package, "held_out": held_out}
    sources = [source("a/guitar", "muldjord"), source("a/song", "muldjord"), source("b/guitar", "muldjord", True),
               *(source(f"track{i}", "game") for i in range(5))]
    mixes = guitar_mixes(sources, 3, np.random.default_rng(0))
    assert [m["stem"] for m in mixes] == ["/muldjord/a/guitar.ogg"] * 3
    assert len({m["path"] for m in mixes}) == 3 and all(m["package"] == "game" for m in mixes)

    rng = np.random.default_rng(1)
    music = rng.standard_normal(50 * WINDOW_SAMPLES).astype(np.float32) * 0.1
    stem = np.sin(np.arange(3 * WINDOW_SAMPLES) * 0.05).astype(np.float32)
    out = mixed(music, stem, {"level_db": -6.0, "stem_start": 0.5})
    assert len(out) == MIX_WINDOWS * WINDOW_SAMPLES
    added = out - music[:len(out)]
    level_db = 10 * np.log10(np.mean(added ** 2) / np.mean(music[:len(out)] ** 2))
    assert abs(level_db + 6.0) < 0.01, level_db
    from_the_middle = np.resize(np.roll(stem, -len(stem) // 2), len(out))  # the stem from its middle on, looped
    assert np.corrcoef(added, from_the_middle)[0, 1] > 0.9999
