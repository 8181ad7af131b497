"""The `sonotype` command: a thin layer over the Python API.

Each command group lives in its own module with a ``register(app)`` function; commands
parse options, call the library and format the answer. Errors the library raises on
purpose (:class:`~sonotype.errors.SonotypeError`) are printed as one red line, exit code 2.
"""

from __future__ import annotations

import typer

from sonotype._version import __version__
from sonotype.cli import backbone, bench, corpus, features, hub, inspect, predict, serve, tag, train
from sonotype.cli._common import run_app

app = typer.Typer(
    name="sonotype",
    help="Labelled audio in, a trustworthy classifier out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: rich markup would swallow '[happy, sad]'
)

for _module in (inspect, corpus, features, train, predict, serve, backbone, hub, tag, bench):
    _module.register(app)


def _print_version(value: bool) -> None:
    # An eager option's callback runs before the command is looked for: `sonotype --version` alone works.
    if value:
        typer.echo(f"sonotype {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
    ),
) -> None:
    """Labelled audio in, a trustworthy classifier out."""


def main() -> None:
    """Console-script entry point."""

    run_app(app)
