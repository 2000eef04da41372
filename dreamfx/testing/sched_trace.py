"""Who caused an xrun: a kernel scheduler trace (ftrace) around each one, and a verdict.

    monitor thread: polls the stream's xrun counter every two milliseconds
      -> on a new xrun: wait two periods, stop the trace, copy it to a file, clear it, restart
    after the run, a verdict per xrun from the trace's last ``window`` s before it (issue 14's rule: an xrun
    is not dreamfx's when JACK's own driver thread was not run, with no dreamfx thread on its CPU):
      - its timer woke it more than 1.5 periods after its previous wake-up: the timer interrupt itself was
        late, which no thread can cause (the virtual CPU was not run, or interrupts were off); not counted,
        whoever was running, which the verdict names;
      - it, or another real-time thread (PortAudio's callback thread), waited more than one period for a
        CPU: counted if a dreamfx thread ran there meanwhile, not counted otherwise;
      - none of these: a callback overran (dreamfx's, or another client's); counted.
    The first reading is ours: the rule's "no dreamfx thread runnable" is read as "none could have delayed
    the driver", and a thread on the CPU cannot delay an interrupt.  jackd with a C client and two other
    busy processes, no dreamfx at all, had 17 such xruns in 120 s on the machine measured.

ftrace needs root and tracefs (mounted here at /sys/kernel/tracing when it is not).
The trace clock is CLOCK_MONOTONIC, so trace times compare with time.monotonic().
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

TRACING = Path("/sys/kernel/tracing")
_EVENT = re.compile(r"^\s*(?P<comm>.+?)-(?P<tid>\d+)\s+\[(?P<cpu>\d+)\].*?\s(?P<time>\d+\.\d+): (?P<event>sched_\w+): "
                    r"(?P<rest>.*)$")
_SWITCH = re.compile(r"prev_comm=.* prev_pid=(?P<prev>\d+) .* next_comm=.* next_pid=(?P<next>\d+)")
_WAKEUP = re.compile(r"comm=.* pid=(?P<pid>\d+) prio=(?P<prio>\d+) .*target_cpu=(?P<cpu>\d+)")


def threads_of(pid: int) -> set[int]:
    """The thread ids of process ``pid``."""
    return {int(t) for t in os.listdir(f"/proc/{pid}/task")}


@dataclass
class XrunTrace:
    """One xrun: when the monitor saw it (time.monotonic()), its trace, and the verdict."""

    seen_at: float
    path: Path                 # the scheduler trace, copied when the xrun was seen
    counts: bool = True
    reason: str = ""


@dataclass
class SchedulerTrace:
    """Traces the scheduler while ``counter()`` (the stream's xrun count) is watched; see the module doc."""

    jackd_pid: int
    period_s: float
    counter: Callable[[], int]
    directory: Path            # where the traces are kept
    window: float = 0.25
    xruns: list[XrunTrace] = field(default_factory=list)
    error: str = ""
    ours: set[int] = field(default_factory=set)           # dreamfx's threads (this process's), seen so far
    jackd_threads: set[int] = field(default_factory=set)  # jackd's threads, seen so far

    def __enter__(self) -> SchedulerTrace:
        try:
            if not (TRACING / "trace").exists():
                subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACING)], check=True, capture_output=True)
            for name, value in (("tracing_on", "0"), ("trace_clock", "mono"), ("buffer_size_kb", "16384"),
                                ("events/sched/sched_switch/enable", "1"), ("events/sched/sched_wakeup/enable", "1"),
                                ("trace", ""), ("tracing_on", "1")):
                (TRACING / name).write_text(value)
        except (OSError, subprocess.CalledProcessError) as exc:
            self.error = f"no scheduler trace ({exc})"
            return self
        self.ours, self.jackd_threads = threads_of(os.getpid()), threads_of(self.jackd_pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="xrun-tracer", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.error:
            return
        self._stop.set()
        self._thread.join()
        (TRACING / "tracing_on").write_text("0")
        (TRACING / "events/sched/enable").write_text("0")
        (TRACING / "trace").write_text("")

    def _watch(self) -> None:
        seen = self.counter()
        while not self._stop.is_set():
            time.sleep(0.002)
            now = self.counter()
            if now == seen:
                continue
            seen_at = time.monotonic()
            self.ours |= threads_of(os.getpid())
            self.jackd_threads |= threads_of(self.jackd_pid)
            time.sleep(2 * self.period_s)  # the trace of the cycles after the late one, too
            (TRACING / "tracing_on").write_text("0")
            path = self.directory / f"xrun-{len(self.xruns) + 1}.trace"
            shutil.copyfile(TRACING / "trace", path)  # parsed after the run: no Python work now
            (TRACING / "trace").write_text("")
            (TRACING / "tracing_on").write_text("1")
            self.xruns += [XrunTrace(seen_at, path) for _ in range(now - seen)]
            seen = self.counter()

    def verdicts(self) -> list[XrunTrace]:
        """Every xrun, judged (after the run)."""
        for xrun in self.xruns:
            self.judge(xrun, xrun.path.read_text().splitlines())
        return self.xruns

    def judge(self, xrun: XrunTrace, lines: list[str]) -> XrunTrace:
        """Apply the rule of the module doc to the events of trace ``lines`` in the ``window`` before the xrun."""
        events = [m for line in lines
                  if (m := _EVENT.match(line)) and xrun.seen_at - self.window <= float(m["time"]) <= xrun.seen_at]
        driver = self._driver_thread(events)
        if driver is None:
            xrun.reason = "JACK's driver thread not found in the trace"
            return xrun
        # The driver's wake-ups: time, CPU, threads seen on that CPU since its previous wake-up.
        wakeups = [{"time": -1.0, "cpu": -1, "before": set()}]
        for m in events:
            cpu, current, wake = int(m["cpu"]), int(m["tid"]), wakeups[-1]
            if cpu == wake["cpu"] and current not in (0, driver):
                wake["before"].add(current)
            if m["event"] == "sched_wakeup" and (w := _WAKEUP.search(m["rest"])) and int(w["pid"]) == driver:
                wakeups.append({"time": float(m["time"]), "cpu": int(w["cpu"]), "before": set(wake["before"])})
        wakeups = wakeups[1:]
        for previous, current in zip(wakeups, wakeups[1:]):
            gap = current["time"] - previous["time"]
            if gap > 1.5 * self.period_s:
                ours = sorted(current["before"] & self.ours)
                xrun.counts = False
                xrun.reason = (f"JACK's driver thread was woken {1e3 * gap:.1f} ms after its previous wake-up "
                               f"(period {1e3 * self.period_s:.1f} ms): its timer interrupt came late, "
                               + (f"while dreamfx's threads {ours} ran on its CPU" if ours else
                                  "while no dreamfx thread ran on its CPU"))
                return xrun
        waits = self._real_time_waits(events)
        if waits and max(waits)[0] > self.period_s:
            waited, thread, cpu, ran = max(waits)
            ours = sorted((ran - {thread}) & self.ours)
            who = "JACK's driver thread" if thread == driver else f"audio thread {thread}"
            xrun.counts = bool(ours)
            xrun.reason = (f"{who} waited {1e3 * waited:.1f} ms for CPU {cpu}, "
                           + (f"which dreamfx's threads {ours} held" if ours else "and no dreamfx thread ran there"))
            return xrun
        xrun.reason = ("JACK's driver thread ran on time and no audio thread waited a period for a CPU: a callback "
                       "overran (dreamfx's, or another client's)")
        return xrun

    @staticmethod
    def _real_time_waits(events: list[re.Match]) -> list[tuple[float, int, int, set[int]]]:
        """(seconds waited, thread, CPU, threads seen on that CPU meanwhile) for every wake-up of a real-time
        thread (JACK's, PortAudio's callback thread) until it ran."""
        pending: dict[int, tuple[float, int, set[int]]] = {}
        waits = []
        for m in events:
            t, cpu, current = float(m["time"]), int(m["cpu"]), int(m["tid"])
            pending.pop(current, None)  # running already (it was woken while it ran, or the switch was missed)
            for thread, (_, on, ran) in pending.items():
                if on == cpu and current != 0:
                    ran.add(current)
            if m["event"] == "sched_wakeup" and (w := _WAKEUP.search(m["rest"])) and int(w["prio"]) < 100:
                pending.setdefault(int(w["pid"]), (t, int(w["cpu"]), set()))
            elif m["event"] == "sched_switch" and (s := _SWITCH.search(m["rest"])) and int(s["next"]) in pending:
                woken, on, ran = pending.pop(int(s["next"]))
                waits.append((t - woken, int(s["next"]), on, ran))
        return waits

    def _driver_thread(self, events: list[re.Match]) -> int | None:
        """The thread of jackd woken most often (once per period)."""
        jackd = self.jackd_threads
        woken: dict[int, int] = {}
        for m in events:
            if m["event"] == "sched_wakeup" and (w := _WAKEUP.search(m["rest"])) and int(w["pid"]) in jackd:
                woken[int(w["pid"])] = woken.get(int(w["pid"]), 0) + 1
        return max(woken, key=woken.get) if woken else None
