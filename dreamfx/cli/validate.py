"""The validate subcommand: the plugin validator's battery on presets, models and exports."""

from __future__ import annotations

import dataclasses
import json
import sys

import click


@click.command("validate")
@click.argument("targets", nargs=-1, metavar="[TARGET]...")
@click.option("--strictness", type=click.IntRange(1, 10), default=5, show_default=True,
              help="1: the quick checks; 5: all checks, pluginval's default; 10: every block size at every rate, "
              "1000 values per parameter.")
@click.option("--seconds", type=click.FloatRange(0, min_open=True), help="Length of the test signals [default: "
              "two chunks past the latency].")
@click.option("--jobs", "-j", type=click.IntRange(1), default=1, show_default=True,
              help="Targets validated at once, each in its own process.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON document.")
@click.option("--known-failure", "known", multiple=True, metavar="TARGET:CHECK", help="A check known to fail "
              "(repeatable): it must fail, and does not fail the run; if it passes, the run fails (update the list).")
def validate_command(targets, strictness, seconds, jobs, as_json, known) -> None:
    """Hammer presets, models and exports with a plugin validator's battery: block sizes and sample rates,
    NaN bursts, latency, parameter fuzz and automation, state round trips, damaged files.

    TARGET: a preset (name or .toml), a model (default, msd-vgg, mtt-vgg, tags-plain, tags-robust, tags-live or a
    .safetensors file) or an export (.onnx, .pt); model:NAME where a preset has the same name.  None: every shipped preset and model.
    One line per check; exit status 1 when any check fails.
    """
    from dreamfx.validate.battery import shipped_targets, summary, validate
    outcomes = validate(list(targets) or shipped_targets(), strictness, seconds, jobs,
                        (lambda outcome: None) if as_json else (lambda outcome: click.echo(outcome.line())))
    if as_json:
        click.echo(json.dumps({"strictness": strictness, "passed": sum(o.passed for o in outcomes),
                               "failed": sum(not o.passed for o in outcomes),
                               "checks": [dataclasses.asdict(o) for o in outcomes]}, indent=1))
    else:
        click.echo(summary(outcomes))
    failed = {f"{o.subject}:{o.check}" for o in outcomes if not o.passed}
    ran = {f"{o.subject}:{o.check}" for o in outcomes}
    unexpected, fixed = failed - set(known), (set(known) & ran) - failed
    if known:
        click.echo(f"known failures: {len(set(known) & failed)} still failing; unexpected failures: "
                   f"{', '.join(sorted(unexpected)) or 'none'}; known failures now passing: "
                   f"{', '.join(sorted(fixed)) or 'none'}", err=as_json)
    if unexpected or fixed:
        sys.exit(1)
