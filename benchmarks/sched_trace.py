"""Who caused an xrun: a kernel scheduler trace (ftrace) around each one, and a verdict.

    monitor thread: polls the stream's xrun counter every two milliseconds
      -> on a new xrun: wait two periods, stop the trace, copy it to a file, clear it, restart
    after the run, a verdict per xrun from the trace's last ``window`` s before it (issue 14's rule): the xrun
    was not dreamfx's when JACK's driver thread was not run while no dreamfx thread ran on its CPU, i.e.
      - its timer woke it more than 1.5 periods after its previous wake-up, and meanwhile its CPU ran
        no dreamfx thread (a virtual machine's stall: the whole virtual CPU was not run), or
      - it waited more than one period for a CPU on which no dreamfx thread ran meanwhile;
    every other xrun counts against dreamfx.

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

TRACING = Path("/sys/kernel/tracing")
_EVENT = re.compile(r"^\s*(?P<comm>.+?)-(?P<tid>\d+)\s+\[(?P<cpu>\d+)\].*?\s(?P<time>\d+\.\d+): (?P<event>sched_\w+): "
                    r"(?P<rest>.*)$")
_SWITCH = re.compile(r"prev_comm=.* prev_pid=(?P<prev>\d+) .* next_comm=.* next_pid=(?P<next>\d+)")
_WAKEUP = re.compile(r"comm=.* pid=(?P<pid>\d+) .*target_cpu=(?P<cpu>\d+)")


def threads_of(pid: int) -> set[int]:
    return {int(t) for t in os.listdir(f"/proc/{pid}/task")}


@dataclass
class XrunTrace:
    """One xrun: when the monitor saw it, the trace lines around it, and the verdict."""

    seen_at: float
    path: Path                 # the scheduler trace, copied when the xrun was seen
    counts: bool = True
    reason: str = ""


@dataclass
class SchedulerTrace:
    """Traces the scheduler while ``counter()`` (the stream's xrun count) is watched; see the module doc."""

    jackd_pid: int
    period_s: float
    counter: callable
    directory: Path            # where the traces are kept
    window: float = 0.25
    xruns: list[XrunTrace] = field(default_factory=list)
    error: str = ""

    def __enter__(self) -> SchedulerTrace:
        try:
            if not (TRACING / "trace").exists():
                subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACING)], check=True, capture_output=True)
            for name, value in (("tracing_on", "0"), ("trace_clock", "mono"), ("buffer_size_kb", "16384"),
                                ("events/sched/sched_switch/enable", "1"), ("events/sched/sched_wakeup/enable", "1"),
                                ("trace", ""), ("tracing_on", "1")):
                (TRACING / name).write_text(value)
        except (OSError, subprocess.CalledProcessError) as exc:
            self.error = f"no scheduler trace ({exc}); xruns are counted without a verdict"
            return self
        self._ours, self._jackd = threads_of(os.getpid()), threads_of(self.jackd_pid)
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
            self._ours, self._jackd = self._ours | threads_of(os.getpid()), self._jackd | threads_of(self.jackd_pid)
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
            lines = [line for line in xrun.path.read_text().splitlines()
                     if (m := _EVENT.match(line)) and xrun.seen_at - self.window <= float(m["time"]) <= xrun.seen_at]
            self.judge(xrun, lines)
        return self.xruns

    def judge(self, xrun: XrunTrace, lines: list[str]) -> XrunTrace:
        """Apply the rule of the module doc to ``lines``, the trace before the xrun."""
        driver = self._driver_thread(lines)
        if driver is None:
            xrun.reason = "JACK's driver thread not found in the trace"
            return xrun
        # The driver's wake-ups: time, CPU, threads seen on that CPU since its previous wake-up and until it
        # ran, and how long it waited for the CPU.
        wakeups = [{"time": -1.0, "cpu": -1, "before": set(), "ran": set(), "waited": None}]
        for line in lines:
            m = _EVENT.match(line)
            t, cpu, current = float(m["time"]), int(m["cpu"]), int(m["tid"])
            wake = wakeups[-1]
            if cpu == wake["cpu"] and current not in (0, driver):
                wake["ran" if wake["waited"] is None else "before"].add(current)
            if m["event"] == "sched_wakeup" and (w := _WAKEUP.search(m["rest"])) and int(w["pid"]) == driver:
                before = wake["before"] | ({current} if int(w["cpu"]) == cpu and current not in (0, driver) else set())
                wakeups.append({"time": t, "cpu": int(w["cpu"]), "before": before, "ran": set(), "waited": None})
            elif m["event"] == "sched_switch" and (s := _SWITCH.search(m["rest"])) and cpu == wake["cpu"]:
                if int(s["next"]) == driver and wake["waited"] is None:
                    wake["waited"] = t - wake["time"]
        wakeups = wakeups[1:]
        for previous, current in zip(wakeups, wakeups[1:]):
            gap = current["time"] - previous["time"]
            if gap > 1.5 * self.period_s:
                ours = sorted(current["before"] & self._ours)
                xrun.counts = bool(ours)
                xrun.reason = (f"JACK's driver thread was woken {1e3 * gap:.1f} ms after its previous wake-up "
                               f"(period {1e3 * self.period_s:.1f} ms), "
                               + (f"while dreamfx's threads {ours} ran on its CPU" if ours else
                                  "and no dreamfx thread ran on its CPU meanwhile"))
                return xrun
        for wake in wakeups:
            if wake["waited"] is not None and wake["waited"] > self.period_s:
                ours = sorted(wake["ran"] & self._ours)
                xrun.counts = bool(ours)
                xrun.reason = (f"JACK's driver thread waited {1e3 * wake['waited']:.1f} ms for CPU {wake['cpu']}, "
                               + (f"which dreamfx's threads {ours} held" if ours else "and no dreamfx thread ran there"))
                return xrun
        xrun.reason = "JACK's driver thread ran on time: a client (dreamfx's callback) was late"
        return xrun

    def _driver_thread(self, lines: list[str]) -> int | None:
        """The thread of jackd woken most often (once per period)."""
        jackd = self._jackd
        woken: dict[int, int] = {}
        for line in lines:
            m = _EVENT.match(line)
            if m["event"] == "sched_wakeup" and (w := _WAKEUP.search(m["rest"])) and int(w["pid"]) in jackd:
                woken[int(w["pid"])] = woken.get(int(w["pid"]), 0) + 1
        return max(woken, key=woken.get) if woken else None
