"""Shared CLI plumbing: one place that turns library errors into clean messages."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from ..errors import SonotypeError

console = Console(stderr=True)
out = Console()


def run_app(app: typer.Typer) -> None:
    try:
        app()
    except SonotypeError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
