"""Rendering many files: in this process, in N local worker processes, or on a Dask cluster.

    dreamfx process in/ out/                           # one file after another, here
    dreamfx process in/ out/ --jobs 2                  # here and in 1 worker process (N jobs: N - 1 workers)
    dreamfx process in/ out/ --cluster tcp://host:8786  # the workers of a running Dask scheduler

``--jobs N`` renders here while N - 1 worker processes, forked as the command starts
(before any torch computation, see :class:`WorkerProcesses`), build their chains, and
then every process takes the next file from the same list when it is free, so a folder
of a few short files gains nearly as much as a long one.  (A local Dask cluster started
its workers before the first file: about 5 s, which made ``--jobs 2`` on four 12-second
files only 1.2x faster than ``--jobs 1``.)  A worker process that dies leaves its file
to this process.

Each file is one task.  A worker builds the chain from a :class:`~dreamfx.recipe.ChainRecipe` (the
preset's name or path, the model and the overrides: plain values; the preset and
model are read from files on the worker, never unpickled) and renders the file in
blocks (:func:`dreamfx.render.file.render_file`, written under a temporary name and
renamed when complete).  A file's render depends on the file, the recipe and the
number of threads that computed it (torch's convolutions split their sums by thread:
another count rounds differently, measured up to 6e-7 apart), so every render takes
an explicit ``threads``: with the same count, outputs are bit for bit those of the
serial render, whichever process or machine did the work.

Dask distributed rather than Ray: it installs as pure Python (no object store or
raylet daemons), a cluster is two commands (``dask scheduler``, ``dask worker
ADDRESS``), and its scheduler reschedules the task of a worker that dies on another
worker (``distributed.scheduler.allowed-failures`` times, default 3) before it gives
the task up.  A dead worker's temporary file is removed once the run ends, and the run
ends with a summary of what was rendered and what failed.
"""

from __future__ import annotations

import collections
import functools
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dreamfx.errors import DreamfxError
from dreamfx.files import remove_partial_files
from dreamfx.recipe import ChainRecipe


@dataclass
class FileResult:
    """One file's outcome."""

    source: Path
    destination: Path
    frames: int = 0               # samples rendered (0 on failure)
    sample_rate: int = 0
    seconds: float = 0.0          # wall time of its render
    error: str | None = None      # one line, when it failed
    worker: str = ""              # where it ran: "local", or the worker's address


@dataclass
class RunSummary:
    results: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0          # wall time of the whole run
    partial_files_removed: int = 0

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.error is not None]

    def line(self) -> str:
        done = [r for r in self.results if r.error is None]
        audio = sum(r.frames / r.sample_rate for r in done if r.sample_rate)
        text = (f"rendered {len(done)} of {len(self.results)} file(s), {audio:.1f} s of audio in {self.seconds:.1f} s "
                f"(real-time factor {self.seconds / audio if audio else 0:.3f})")
        if self.partial_files_removed:
            text += f"; removed {self.partial_files_removed} partial file(s) left by a dead worker"
        return text + "".join(f"\nfailed: {r.source}: {r.error}" for r in self.failed)


@functools.lru_cache(maxsize=4)
def _cached_chain(recipe: ChainRecipe):
    return recipe.build()


def _build_chain_here(recipe: ChainRecipe) -> None:
    """A worker's start: its chain built (and kept) before its first file."""
    _cached_chain(recipe)


def render_one(recipe: ChainRecipe, source: Path, destination: Path, threads: int,
               progress: Callable[[int], None] | None = None, chain=None) -> FileResult:
    """Render one file (in a worker, or here) with ``threads`` torch threads, through ``chain`` when given (the
    recipe's, already built) or the recipe's chain built here.  A DreamfxError (bad input, bad preset) becomes
    the result's error line; anything else propagates (Dask then retries the task elsewhere)."""
    from threadpoolctl import threadpool_limits
    from dreamfx.engine.backends import torch_threads
    from dreamfx.render.file import render_file
    from dreamfx.plugin.midi import Automation, MidiControl
    started = time.perf_counter()
    result = FileResult(Path(source), Path(destination), worker=_worker_name())
    # numpy's BLAS takes the same count: its own pool (a thread per core) beside every process's torch threads
    # made the processes of --jobs 2 compete for the cores
    try:
        with torch_threads(threads), threadpool_limits(threads):
            if recipe.automation:  # the automation moves the chain's parameters: a fresh chain for every file
                chain = recipe.build()
            elif chain is None:
                chain = _cached_chain(recipe)
            attach = None if recipe.automation is None else lambda sr, channels: Automation(recipe.automation).attach(
                MidiControl(chain.dream_effects[0], recipe.midi_map(), chain=chain), sr, channels)
            result.destination.parent.mkdir(parents=True, exist_ok=True)
            result.sample_rate, result.frames = render_file(chain, source, destination, buffer_size=recipe.buffer_size,
                                                            before=attach, progress=progress)
    except DreamfxError as exc:
        result.error = str(exc)
    result.seconds = time.perf_counter() - started
    return result


def increments(progress: Callable[[int], None]) -> Callable[[int], None]:
    """A callback for running totals (samples done so far) that calls ``progress`` with the samples since its
    previous call (as a click progress bar's ``update`` takes them)."""
    done = [0]

    def update(total: int) -> None:
        progress(total - done[0])
        done[0] = total
    return update


def _worker_name() -> str:
    """Where this render runs: a Dask worker's address, else this process's id."""
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def render_files(jobs: list[tuple[Path, Path]], recipe: ChainRecipe, *, workers: int = 1, cluster: str | None = None,
                 threads: int | None = None, progress: Callable[[int], None] | None = None,
                 chain=None, started_workers: WorkerProcesses | None = None) -> RunSummary:
    """Render every (source, destination) of ``jobs``: here and in ``workers`` - 1 local worker processes, or on
    the Dask scheduler at ``cluster``.  ``threads``: torch threads per render (default: cores / workers here, 1
    on a cluster).  ``progress(samples)`` is called with the samples done since its last call.  ``chain``: the
    recipe's chain if the caller built it already (this process renders with it); ``started_workers``: the
    worker processes if the caller started them already (they are closed here)."""
    started = time.perf_counter()
    summary = RunSummary()
    if threads is None:
        threads = 1 if cluster else max(1, (os.cpu_count() or 1) // workers)
    local = started_workers
    if local is None and cluster is None and min(workers, len(jobs)) > 1:
        local = WorkerProcesses(recipe, min(workers, len(jobs)) - 1)
    stopped = True
    try:
        if cluster is None:
            summary.results = _render_here_and_in_workers(jobs, recipe, local, threads, progress, chain)
        else:
            summary.results = _render_on_dask(jobs, recipe, cluster, threads, progress)
        stopped = False
    finally:
        if local is not None:
            local.close(stop=stopped)
        summary.partial_files_removed = sum(remove_partial_files(destination) for _, destination in jobs)
        summary.seconds = time.perf_counter() - started
    return summary


def start_local_cluster(workers: int, host: str | None = None):
    """A Dask cluster of ``workers`` processes on this machine, one task at a time each.  Dask's workers set
    MALLOC_TRIM_THRESHOLD_=65536 by default, which made torch's renders 1.4x slower here (every large
    buffer returned to the system and faulted in again): this cluster leaves glibc's own setting."""
    import dask
    from distributed import LocalCluster
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                            host=host)


class WorkerProcesses:
    """``count`` worker processes, started as soon as this is made (each builds the recipe's chain), so that
    they start while the caller does its own start-up.  Close with :meth:`close`.

    fork: copy this process (a fraction of a second) instead of starting fresh interpreters that import torch
    (about 3 s each).  Only where no torch computation has run in this process yet: a forked child of a
    process whose OpenMP threads have run hangs in its first parallel region on more than one thread
    (measured).  ``dreamfx process`` forks before it builds anything; otherwise workers are spawned.
    """

    def __init__(self, recipe: ChainRecipe, count: int, fork: bool = False):
        context = multiprocessing.get_context("fork" if fork else "spawn")
        self.pool = ProcessPoolExecutor(count, mp_context=context)
        self.started = [self.pool.submit(_build_chain_here, recipe) for _ in range(count)]

    def close(self, stop: bool = False) -> None:
        """Let the workers end (``stop``: end them now, their files unfinished, e.g. on Ctrl-C)."""
        if stop:
            for process in list(self.pool._processes.values()):  # the executor has no public way to stop them
                process.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)


def _render_here_and_in_workers(jobs, recipe: ChainRecipe, workers: WorkerProcesses | None, threads: int,
                                progress: Callable[[int], None] | None, chain) -> list[FileResult]:
    """Render ``jobs`` in this process and in ``workers``, each taking the next file when it is free (see the
    module doc); in the order of ``jobs``."""
    queue = collections.deque(jobs)
    lock = threading.Lock()
    results: list[FileResult] = []

    def next_job() -> tuple[Path, Path] | None:
        with lock:
            return queue.popleft() if queue else None

    def feed(started) -> None:
        """One worker's turn: once it has started, hand it files until none is left."""
        try:
            started.result()
        except Exception:  # noqa: BLE001 - it could not start (its error is this process's too): no share for it
            return
        while (job := next_job()) is not None:
            try:
                result = workers.pool.submit(render_one, recipe, *job, threads).result()
            except BrokenProcessPool:  # the worker died: this process renders the file
                with lock:
                    queue.append(job)
                return
            except Exception as exc:  # noqa: BLE001 - an unexpected error in the worker: name it, go on
                result = FileResult(job[0], job[1], error=f"{type(exc).__name__}: {exc}")
            with lock:
                results.append(result)
            if progress is not None:
                progress(result.frames)

    feeders = [threading.Thread(target=feed, args=(started,), daemon=True)
               for started in (workers.started if workers is not None else ())]
    try:
        for feeder in feeders:
            feeder.start()
        while True:
            job = next_job()
            if job is None and any(feeder.is_alive() for feeder in feeders):
                time.sleep(0.05)  # a worker still renders; it may die and leave its file to this process
                continue
            job = job or next_job()  # (one that died just now has left its file)
            if job is None:
                break
            advance = None if progress is None else increments(progress)
            result = render_one(recipe, *job, threads, advance, chain)
            with lock:
                results.append(result)  # its progress was reported as it went
    finally:
        with lock:
            queue.clear()  # on Ctrl-C or an error: the workers take no further file
    order = {source: i for i, (source, _) in enumerate(jobs)}
    return sorted(results, key=lambda r: order[r.source])


def _render_on_dask(jobs, recipe: ChainRecipe, cluster: str, threads: int,
                    progress: Callable[[int], None] | None) -> list[FileResult]:
    from distributed import Client, as_completed
    from distributed.scheduler import KilledWorker
    try:
        client = Client(cluster, timeout="20s")
    except OSError as exc:
        raise DreamfxError(f"--cluster {cluster}: no Dask scheduler answered ({exc}): start one with "
                           "`dask scheduler` and workers with `dask worker ADDRESS`") from None
    with client:
        futures = {client.submit(render_one, recipe, source, destination, threads, pure=False,
                                 key=f"dreamfx-{i}-{source.name}"): (source, destination)
                   for i, (source, destination) in enumerate(jobs)}
        results = []
        for future in as_completed(futures):
            source, destination = futures[future]
            try:
                result = future.result()
            except KilledWorker as exc:
                result = FileResult(source, destination, error=f"its worker died on every try ({exc})")
            except Exception as exc:  # an unexpected error in the worker: name it, go on with the rest
                result = FileResult(source, destination, error=f"{type(exc).__name__}: {exc}")
            results.append(result)
            if progress is not None:
                progress(result.frames)
    order = {source: i for i, (source, _) in enumerate(jobs)}
    return sorted(results, key=lambda r: order[r.source])
