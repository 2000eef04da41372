"""Rendering many files: in this process, in N local worker processes, or on a Dask cluster.

    dreamfx process in/ out/                           # one file after another, here
    dreamfx process in/ out/ --jobs 2                  # a local Dask cluster of 2 worker processes
    dreamfx process in/ out/ --cluster tcp://host:8786  # the workers of a running Dask scheduler

Each file is one task.  A worker builds the chain from a :class:`ChainRecipe` (the
preset's name or path, the model and the overrides: plain values; the preset and
model are read from files on the worker, never unpickled) and renders the file in
blocks (:func:`dreamfx.file_render.render_file`, written under a temporary name and
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

import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dreamfx.errors import DreamfxError
from dreamfx.files import remove_partial_files


@dataclass(frozen=True)
class ChainRecipe:
    """What a worker needs to build the chain: :func:`dreamfx.cli.build_chain`'s arguments, the MIDI
    automation file to play on every file (the chain is then built afresh for each file), and the render
    settings (buffer size, the dream stages' ``offline_batch``)."""

    preset: str = "default"
    model: str | None = None
    chain_spec: str | None = None
    overrides: tuple[tuple[str, object], ...] = ()  # (name, value) pairs of dream parameter overrides
    automation: str | None = None
    buffer_size: int = 8192
    batch: int = 1

    def build(self):
        from dreamfx.cli import build_chain
        chain = build_chain(self.preset, self.model, self.chain_spec, **dict(self.overrides))
        for effect in chain.dream_effects:
            effect.offline_batch = self.batch
        return chain


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


def render_one(recipe: ChainRecipe, source: Path, destination: Path, threads: int,
               progress: Callable[[int], None] | None = None) -> FileResult:
    """Render one file (in a worker, or here) with ``threads`` torch threads.  A DreamfxError (bad input, bad
    preset) becomes the result's error line; anything else propagates (Dask then retries the task elsewhere)."""
    import torch
    from dreamfx.file_render import render_file
    from dreamfx.midi import Automation, MidiControl
    torch.set_num_threads(threads)
    started = time.perf_counter()
    result = FileResult(Path(source), Path(destination), worker=_worker_name())
    try:
        chain = recipe.build() if recipe.automation else _cached_chain(recipe)
        attach = None if recipe.automation is None else lambda sr, channels: Automation(recipe.automation).attach(
            MidiControl(chain.dream_effects[0]), sr, channels)
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
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        return "local"


def render_files(jobs: list[tuple[Path, Path]], recipe: ChainRecipe, *, workers: int = 1, cluster: str | None = None,
                 threads: int | None = None, progress: Callable[[int], None] | None = None) -> RunSummary:
    """Render every (source, destination) of ``jobs``: here when ``workers`` is 1 and no ``cluster``, else on a
    local Dask cluster of ``workers`` processes or on the Dask scheduler at ``cluster``.  ``threads``: torch
    threads per render (default: cores / workers here, 1 on a cluster).  ``progress(samples)`` is called with
    the samples done since its last call."""
    started = time.perf_counter()
    summary = RunSummary()
    if threads is None:
        threads = 1 if cluster else max(1, (os.cpu_count() or 1) // workers)
    try:
        if cluster is None and workers == 1:
            for source, destination in jobs:
                advance = None if progress is None else increments(progress)
                summary.results.append(render_one(recipe, source, destination, threads, advance))
        else:
            summary.results = _render_on_dask(jobs, recipe, workers, cluster, threads, progress)
    finally:
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


def _render_on_dask(jobs, recipe: ChainRecipe, workers: int, cluster: str | None, threads: int,
                    progress: Callable[[int], None] | None) -> list[FileResult]:
    from distributed import Client, as_completed
    from distributed.scheduler import KilledWorker
    local = None
    try:
        if cluster is None:
            local = start_local_cluster(workers)
        try:
            client = Client(local if local is not None else cluster, timeout="20s")
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
    finally:
        if local is not None:
            local.close()
    order = {source: i for i, (source, _) in enumerate(jobs)}
    return sorted(results, key=lambda r: order[r.source])
