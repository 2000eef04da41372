"""A JACK client in its own process: plays a signal into PortAudio's inputs, records PortAudio's outputs.

    python tests/jack_tester.py SIGNAL.npy RECORDED.npy SECONDS

Run as a separate process so that its Python process callback has an interpreter lock of its own: in the
test's process it would wait for the lock dreamfx's worker holds and make the whole JACK cycle late (an
xrun dreamfx did not cause).  It waits for dreamfx's PortAudio ports, connects them, waits SETTLE
seconds, plays SIGNAL (2, n) from then on (printing "playing") while recording SECONDS (printing "recorded"
when done), then saves what it recorded.
"""

from __future__ import annotations

import sys
import time

import jack
import numpy as np

SETTLE = 0.3  # seconds between wiring the graph and playing: JACK may flag an xrun as the graph changes


def main(signal_path: str, recorded_path: str, seconds: float) -> None:
    signal = np.load(signal_path)
    client = jack.Client("dreamfx-tester", no_start_server=True)
    outs = [client.outports.register(f"out_{i}") for i in range(2)]
    ins = [client.inports.register(f"in_{i}") for i in range(2)]
    recorded = np.zeros((2, int(seconds * client.samplerate)), dtype=np.float32)
    recorded.fill(0.0)  # touch every page now, not on the first write from the real-time callback
    state = {"running": False, "played": 0, "kept": 0}

    @client.set_process_callback
    def process(frames: int) -> None:
        if not state["running"]:
            for port in outs:
                port.get_array()[:] = 0
            return
        chunk = signal[:, state["played"]:state["played"] + frames]
        for i, port in enumerate(outs):
            buffer = port.get_array()
            buffer[:] = 0
            buffer[:chunk.shape[1]] = chunk[i]
        state["played"] += frames
        take = min(frames, recorded.shape[1] - state["kept"])
        for i, port in enumerate(ins):
            recorded[i, state["kept"]:state["kept"] + take] = port.get_array()[:take]
        state["kept"] += take

    with client:
        for _ in range(200):  # dreamfx's stream: PortAudio's two audio inputs and two outputs
            targets = client.get_ports("PortAudio", is_audio=True, is_input=True)
            sources = client.get_ports("PortAudio", is_audio=True, is_output=True)
            # PortAudio connects its inputs to the system's just after registering them
            if len(targets) >= 2 and len(sources) >= 2 and all(client.get_all_connections(t) for t in targets):
                break
            time.sleep(0.05)
        for i in range(2):
            for source in client.get_all_connections(targets[i]):
                client.disconnect(source, targets[i])
            client.connect(outs[i], targets[i])
            client.connect(sources[i], ins[i])
        time.sleep(SETTLE)
        state["running"] = True
        print("playing", flush=True)
        deadline = time.monotonic() + seconds + 5  # no JACK requests meanwhile: only the callback talks to JACK
        while state["kept"] < recorded.shape[1] and time.monotonic() < deadline:
            time.sleep(0.05)
        print("recorded", flush=True)  # before the client leaves the graph (JACK may flag an xrun then)
    np.save(recorded_path, recorded[:, :state["kept"]])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
