"""The plugins subcommand: what can be hosted in a chain (LV2 by URI, VST3 in the standard folders), and one
plugin's parameters."""

from __future__ import annotations

import math

import click

from dreamfx.errors import DreamfxError


@click.command()
@click.argument("plugin", required=False)
def plugins(plugin: str | None) -> None:
    """List the plugins a chain can host (LV2 by URI and name, VST3 files), or PLUGIN's parameters with their
    ranges and defaults (an LV2 URI or a .vst3 path). In a chain: --chain 'dream,lv2:URI'; in a preset:
    plugin = "lv2:URI" with controls by symbol."""
    from dreamfx.plugin.hosted import load_external, vst3_files
    from dreamfx.plugin.lilv import installed_plugins, plugin_info
    if plugin is None:
        try:
            found = installed_plugins()
        except DreamfxError as exc:
            click.echo(f"LV2: none ({exc})")
            found = []
        for uri, name in found:
            click.echo(f"lv2:{uri}  {name}")
        vst3 = vst3_files()
        for path in vst3:
            click.echo(f"vst3:{path}")
        click.echo(f"{len(found)} LV2 plugins, {len(vst3)} VST3 plugins (dreamfx plugins URI lists one's parameters)")
        return
    path = plugin.removeprefix("vst3:").removeprefix("au:")
    if path.endswith((".vst3", ".component")):
        loaded = load_external(path, {})
        click.echo(f"{'au' if path.endswith('.component') else 'vst3'}:{path}  {loaded.name}")
        for name, parameter in loaded.parameters.items():
            click.echo(f"  {name} = {getattr(loaded, name)!r}  ({parameter})")
        return
    info = plugin_info(plugin.removeprefix("lv2:"))
    click.echo(f"lv2:{info.uri}  {info.name} ({info.kind})")
    if info.unsupported:
        click.echo(f"  cannot be hosted: {'; '.join(info.unsupported)}")
    audio = {d: len(info.ports_of("audio", d)) for d in ("in", "out")}
    click.echo(f"  audio: {audio['in']} in, {audio['out']} out")
    for port in info.ports:
        if port.kind != "control":
            continue
        span = f"{port.minimum:g}..{port.maximum:g}" if math.isfinite(port.minimum + port.maximum) else "any"
        kind = "integer" if port.integer else "toggle" if port.toggled else "float"
        if port.direction == "in":
            click.echo(f"  {port.symbol} = {port.initial:g}  ({port.name}; {kind}, {span})")
        else:
            click.echo(f"  output {port.symbol}  ({port.name}{'; latency in samples' if port.latency else ''})")
