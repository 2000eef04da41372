"""The ``dreamfx`` command line: a thin layer that parses, calls the layers below and prints.

Errors are one line on stderr (``dreamfx: error: ...``) with exit status 2;
no traceback, no output file left behind.  One module per group of subcommands: render (process, demo,
analyze, visualize, gallery), models (info, export), live (live, devices), presets, plugins, validate; options holds
what they share; commands gathers them into the group ``cli``.

Layer: the top; may import every layer below.
"""

from __future__ import annotations

import os
import sys

import click

from dreamfx.errors import DreamfxError


def keep_stdout_for_output() -> None:
    """The command's output keeps stdout; what C libraries print there (hosted LV2 plugins chatter: guitarix's
    "buffersize changed to 128") goes to stderr, so that output such as validate --json stays clean."""
    sys.stdout.flush()
    sys.stdout = os.fdopen(os.dup(1), "w", buffering=1, encoding=sys.stdout.encoding, errors=sys.stdout.errors)
    os.dup2(2, 1)


def main() -> None:
    """Entry point: run the CLI, turning DreamfxError into a one-line message and exit status 2."""
    keep_stdout_for_output()
    try:
        from dreamfx.cli.commands import cli  # here, so that Ctrl-C while torch loads (~1.3 s) ends as any other

        cli(standalone_mode=False)
    except DreamfxError as exc:
        click.echo(f"dreamfx: error: {exc}", err=True)
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt):  # Ctrl-C: click makes it Abort; in the imports, bare
        click.echo("dreamfx: interrupted; no partial output was kept", err=True)
        # Python ends an uncaught KeyboardInterrupt by SIGINT, as a shell expects of Ctrl-C (it shows status
        # 130), after its usual shutdown.  sys.exit(130) did so only sometimes (2 of 20 interrupts 1.5-2.1 s
        # into a render, as it loads): CPython 3.11 marks the interpreter to end by SIGINT whatever the exit status
        # once a KeyboardInterrupt leaves code run through its PyRun_* API, as a C extension's embedded Python
        # is.  The line above is the report: no traceback.
        sys.excepthook = lambda *exc_info: None
        raise KeyboardInterrupt from None
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
