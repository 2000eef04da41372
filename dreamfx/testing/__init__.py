"""Test and benchmark infrastructure, not the effect: a JACK server with the dummy driver
(:mod:`~dreamfx.testing.jack_dummy`) and a scheduler trace that judges each xrun
(:mod:`~dreamfx.testing.sched_trace`)."""
