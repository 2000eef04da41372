"""Folders on every core and on a Dask cluster (dreamfx.render.folder): the same files bit for bit as one process,
and a worker killed mid-file is survived (its file retried, no partial file left)."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time

import numpy as np
import pytest

from conftest import cli_subprocess, require_lv2
from dreamfx.audio_io import read_audio, write_audio
from dreamfx.recipe import ChainRecipe
from dreamfx.render.folder import WorkerProcesses, render_files, start_local_cluster
from dreamfx.nets.models import example_clip_path

# the default preset's chain with a faster dream, whose chunks are dreamt in batches (no consistency projection)
RECIPE = ChainRecipe(overrides=(("consistency", False), ("iterations", 2)), batch=16)
# files slow enough to render (3 s of audio in about 3 s) that a worker, started in about 3 s, gets some
SLOW = ChainRecipe(overrides=(("iterations", 16),), batch=16)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Four 3 s WAV files cut from the example clip (the last one mono), in two subfolders."""
    audio, sr = read_audio(example_clip_path())
    root = tmp_path_factory.mktemp("in")
    for i in range(4):
        part = audio[:, i * sr * 2:i * sr * 2 + 3 * sr]
        (root / f"set{i % 2}").mkdir(exist_ok=True)
        write_audio(root / f"set{i % 2}" / f"clip{i}.wav", part[:1] if i == 3 else part, sr)
    return root


@pytest.fixture(scope="module")
def serial(folder, tmp_path_factory):
    """The folder rendered here, one file after another, on 1 thread."""
    out = tmp_path_factory.mktemp("serial")
    summary = render_files(jobs_of(folder, out), RECIPE, threads=1)
    assert not summary.failed, summary.line()
    return out


@pytest.fixture(scope="module")
def slow_serial(folder, tmp_path_factory):
    """The folder rendered here on 1 thread with SLOW."""
    out = tmp_path_factory.mktemp("slow-serial")
    assert not render_files(jobs_of(folder, out), SLOW, threads=1).failed
    return out


def jobs_of(folder, out):
    return [(path, out / path.relative_to(folder)) for path in sorted(folder.rglob("*.wav"))]


def assert_same_files(a, b, measured, label):
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())  # no stray or partial file
    worst = 0.0
    for name in files:
        x, _ = read_audio(a / name)
        y, _ = read_audio(b / name)
        assert x.shape == y.shape
        worst = max(worst, float(np.abs(x - y).max()))
    measured(f"{label} vs one process: {len(files)} files, max difference {worst:.1e}")
    assert worst == 0.0


def test_a_render_here_gives_the_caller_its_thread_count_back(folder, tmp_path):
    """A file rendered in this process computes on the ``threads`` asked for, and the caller's torch thread count
    is as it was afterwards (a render once left its caller on 1 thread for good: a Python user's later work, and
    the rest of this suite, ran on one core)."""
    import torch
    from dreamfx.engine.backends import torch_threads
    during = set()
    with torch_threads(3):  # the caller's count, and this suite's again afterwards
        summary = render_files(jobs_of(folder, tmp_path)[:1], RECIPE, threads=1,
                               progress=lambda samples: during.add(torch.get_num_threads()))
        after = torch.get_num_threads()
    assert not summary.failed, summary.line()
    assert during == {1} and after == 3


def test_jobs_2_renders_what_one_process_renders(folder, serial, tmp_path, measured):
    """The command as a user runs it (its worker forked as it starts)."""
    out = tmp_path / "out"
    result = cli_subprocess("process", str(folder), str(out), "--no-consistency", "--iterations", "2",
                            "--jobs", "2")  # --batch 16 by default
    assert result.returncode == 0, result.stderr
    assert "rendered 4 of 4 file(s)" in result.stdout
    assert_same_files(serial, out, measured, "--jobs 2 (1 thread each)")


def test_jobs_2_with_an_lv2_stage_renders_what_one_process_renders(folder, tmp_path, measured):
    """Each process hosts its own instance of the plugin (by URI, from the recipe); without the plugin the command
    says so in one line and writes nothing."""
    overdrive = "http://drobilla.net/plugins/mda/Overdrive"
    require_lv2(overdrive, "mda-lv2")
    chain_spec = f"dream,lv2:{overdrive},Reverb"
    alone = tmp_path / "alone"
    assert not render_files(jobs_of(folder, alone), dataclasses.replace(RECIPE, chain_spec=chain_spec),
                            threads=1).failed
    command = ["process", str(folder), str(tmp_path / "out"), "--no-consistency", "--iterations", "2", "--jobs", "2",
               "--chain", chain_spec]
    result = cli_subprocess(*command)
    assert result.returncode == 0, result.stderr
    assert_same_files(alone, tmp_path / "out", measured, "--jobs 2 with an LV2 stage")
    (tmp_path / "empty").mkdir()
    missing = cli_subprocess(*command[:2], str(tmp_path / "nothing"), *command[3:],
                             env={**os.environ, "LV2_PATH": str(tmp_path / "empty")})
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert f"LV2 plugin {overdrive} is not installed" in missing.stderr
    assert not (tmp_path / "nothing").exists()


def test_two_jobs_share_the_files_between_this_process_and_a_worker(folder, slow_serial, tmp_path, measured):
    """--jobs 2: this process renders while a worker process starts, then both take the next file when free
    (files slow enough to render that the worker, started in about 3 s, gets some)."""
    alone, shared = slow_serial, tmp_path / "shared"
    summary = render_files(jobs_of(folder, shared), SLOW, workers=2, threads=1)
    assert not summary.failed, summary.line()
    where = {r.worker for r in summary.results}
    measured(f"--jobs 2 on 4 files of 3 s: {summary.line()}; rendered in {sorted(where)}")
    assert f"pid {os.getpid()}" in where and len(where) == 2  # here, and in the worker
    assert_same_files(alone, shared, measured, "this process and one worker")


def test_a_worker_process_killed_mid_file_leaves_its_file_to_this_process(folder, slow_serial, tmp_path, measured):
    """--jobs 2 with the worker killed (SIGKILL) while both processes write a file: this process renders the
    worker's file too, and every output equals a render in one process."""
    alone, shared = slow_serial, tmp_path / "shared"
    workers = WorkerProcesses(SLOW, 1)
    done = {}
    runner = threading.Thread(target=lambda: done.update(summary=render_files(
        jobs_of(folder, shared), SLOW, workers=2, threads=1, started_workers=workers)))
    runner.start()
    killed, deadline = None, time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and runner.is_alive():
        if len(list(shared.rglob(".*.part.wav"))) == 2:  # this process and the worker are both writing
            killed = next(iter(workers.pool._processes))
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.01)
    runner.join(timeout=300)
    summary = done["summary"]
    measured(f"--jobs 2, worker (pid {killed}) killed mid-file: {summary.line()}; rendered in "
             f"{sorted({r.worker for r in summary.results})}")
    assert killed is not None, "the worker was never caught writing a file"
    assert not summary.failed and {r.worker for r in summary.results} <= {f"pid {os.getpid()}", f"pid {killed}"}
    assert_same_files(alone, shared, measured, "this process, after its worker was killed mid-file")


@pytest.fixture(scope="module")
def cluster():
    """A local Dask cluster of two worker processes, started here (loopback only)."""
    with start_local_cluster(2, host="127.0.0.1") as local:
        yield local


def test_a_cluster_renders_what_one_process_renders(folder, serial, cluster, tmp_path, measured):
    out = tmp_path / "out"
    summary = render_files(jobs_of(folder, out), RECIPE, cluster=cluster.scheduler_address)
    assert not summary.failed, summary.line()
    assert len({r.worker for r in summary.results}) == 2  # both workers rendered
    assert_same_files(serial, out, measured, "local Dask cluster (2 workers)")


def test_a_worker_killed_mid_file_is_survived(folder, serial, cluster, tmp_path, measured):
    """A worker is killed (SIGKILL) while its file is half written: Dask gives the file to a worker again, the
    dead one's partial file is removed, and every output equals the serial render."""
    from distributed import Client
    out = tmp_path / "out"
    jobs = jobs_of(folder, out)
    done = {}
    runner = threading.Thread(target=lambda: done.update(summary=render_files(
        jobs, RECIPE, cluster=cluster.scheduler_address)))
    with Client(cluster.scheduler_address) as client:
        runner.start()
        killed = None
        deadline = time.monotonic() + 120
        while killed is None and time.monotonic() < deadline:
            busy = [address for address, keys in client.processing().items() if keys]
            if busy and any(out.rglob(".*.part.wav")):  # a render is writing its output
                killed = client.run(os.getpid, workers=busy[:1])[busy[0]]
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.01)
        runner.join(timeout=300)
    assert killed is not None, "no render was caught writing its file"
    summary = done["summary"]
    measured(f"worker (pid {killed}) killed mid-file: {summary.line()}; workers used "
             f"{sorted({r.worker for r in summary.results})}")
    assert not summary.failed
    assert_same_files(serial, out, measured, "local cluster with a worker killed mid-file")


def test_a_file_that_fails_is_named_and_the_rest_are_rendered(folder, tmp_path):
    bad = tmp_path / "in"
    bad.mkdir()
    audio, sr = read_audio(next(folder.rglob("*.wav")))
    write_audio(bad / "a.wav", audio, sr)
    (bad / "b.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")  # not audio
    summary = render_files([(bad / "a.wav", tmp_path / "a.wav"), (bad / "b.wav", tmp_path / "b.wav")], RECIPE,
                           workers=2)
    assert [r.error is None for r in summary.results] == [True, False]
    assert "b.wav" in summary.line() and "could not be read as audio" in summary.line()
    assert sorted(p.name for p in tmp_path.glob("*.wav")) == ["a.wav"]
