"""Shared CLI plumbing: one place that turns library errors into clean messages."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from sonotype.errors import SonotypeError
from sonotype.utils.console import make_console

console = make_console()
out = make_console(stderr=False)


def messages(quiet: bool):
    """The console for progress and notes: ``console``, or one that prints nothing under ``--quiet``.

    ``--quiet`` means: no progress and no notes, only the final result line (or, with
    ``--json``, only the JSON on stdout); warnings and errors are still shown.
    """
    return make_console(quiet=True) if quiet else console


def run_app(app: typer.Typer) -> None:
    try:
        app()
    except SonotypeError as exc:
        # The message is text, not markup: '[happy, sad]' or "expected ']'" must print as they are.
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:  # raised outside a command (typer turns one inside into exit 130)
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except SystemExit as exc:
        if exc.code == 130:  # Ctrl-C inside a command: typer exits 130 without a word
            console.print("[yellow]interrupted[/]")
        raise


QUIET_HELP = "No progress or notes: only the final result line (with --json, only the JSON); warnings and errors still show."


def scores(m: dict) -> str:
    """The three headline figures of a metrics object, on one line."""
    return f"accuracy {m['accuracy']:.3f}, balanced {m['balanced_accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}"
