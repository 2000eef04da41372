"""Test and benchmark infrastructure, not the effect: a JACK server with the dummy driver
(:mod:`~dreamfx.testing.jack_dummy`), a scheduler trace that judges each xrun
(:mod:`~dreamfx.testing.sched_trace`), and the judges of dreams other networks hear
(:mod:`~dreamfx.testing.transfer`).

Used by tests/ and benchmarks/ only; may import any layer.
"""
