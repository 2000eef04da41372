"""A JACK server with the dummy driver: real PortAudio duplex audio and JACK MIDI ports without a sound card.

The tests and ``benchmarks/live.py`` run ``dreamfx live`` against it.  JACK's log
lists, for every xrun, the clients that had not finished the cycle (and their state,
which is not a reliable verdict: a callback that sleeps through three periods has
been logged as ``Running`` in one run and ``Triggered`` in another).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from dreamfx.errors import DreamfxError

_XRUN = re.compile(r"JackEngine::XRun: client = .+ was not finished")


class DummyJackServer:
    """``jackd -n name -d dummy -r sample_rate -p period``, its messages kept in ``log_path``.

    While started, JACK_DEFAULT_SERVER points JACK clients (PortAudio, rtmidi) at it.
    """

    def __init__(self, name: str, sample_rate: int, period: int, log_path: Path):
        self.name, self.sample_rate, self.period, self.log_path = name, sample_rate, period, Path(log_path)
        self._process: subprocess.Popen | None = None
        self._saved_env: dict[str, str | None] = {}

    def start(self) -> DummyJackServer:
        with open(self.log_path, "w") as log:
            self._process = subprocess.Popen(["jackd", "-n", self.name, "-d", "dummy", "-r", str(self.sample_rate),
                                              "-p", str(self.period)], stdout=log, stderr=subprocess.STDOUT)
        self._saved_env = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
        os.environ.update(JACK_DEFAULT_SERVER=self.name, JACK_NO_START_SERVER="1")
        waited = subprocess.run(["jack_wait", "-s", self.name, "-w", "-t", "10"], capture_output=True, text=True)
        if waited.returncode != 0 or self._process.poll() is not None:
            self.stop()
            last = (self.log_lines() or ["(no output)"])[-1]
            raise DreamfxError(f"jackd -d dummy did not start: {last}")
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None
        for key, value in self._saved_env.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)

    def __enter__(self) -> DummyJackServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        """jackd's process id while it runs."""
        return None if self._process is None else self._process.pid

    def log_lines(self) -> list[str]:
        return self.log_path.read_text().splitlines()

    def xrun_lines(self, first_line: int = 0) -> list[str]:
        """JACK's xrun messages from line ``first_line`` of its log on (one per unfinished client)."""
        return [line.strip() for line in self.log_lines()[first_line:] if _XRUN.search(line)]
