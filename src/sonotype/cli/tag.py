"""CLI: ``sonotype tag``, a pretrained encoder's own classes for files, without training."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from sonotype.cli._common import console, out
from sonotype.errors import SonotypeError


def tag(
    inputs: list[Path] = typer.Argument(..., help="Audio files or folders."),
    encoder: str = typer.Option("efficientat-mn04", "--encoder", help="efficientat-mn04 (527 AudioSet classes) | "
                                "musicnn-msd (50 MSD music tags), or the folder of either."),
    top: int = typer.Option(5, "--top", help="How many tags per file (or window)."),
    window: float | None = typer.Option(None, "--window", help="Also tag windows of this many seconds."),
    hop: float | None = typer.Option(None, "--hop", help="Window step in seconds (default: --window)."),
    as_json: bool = typer.Option(False, "--json", help='Print {"results": [{"path", "tags": [{"label", '
                                 '"probability"}]}]} (with --window, each result also has "windows").'),
) -> None:
    """Tag audio with a pretrained encoder's own classes: no labelled data, no training."""
    from sonotype.inference.outputs import audio_files  # heavy (torch): lazy for a fast --help
    from sonotype.inference.tagging import Tagger  # heavy (torch): lazy for a fast --help

    files = audio_files(inputs)
    tagger = Tagger.load(encoder)
    results, errors = [], []
    for f in files:
        try:
            results.append(tagger.tag(f, top=top, window=window, hop=hop))
        except SonotypeError as exc:  # reported per file, the others go on
            errors.append({"path": str(f), "error": str(exc)})
    if as_json:
        out.print_json(json.dumps({"encoder": tagger.name, "results": [r.to_dict() for r in results],
                                   "errors": errors}))
    else:
        from rich.markup import escape  # console output only

        for r in results:
            out.print(escape(f"{r.path}: " + ", ".join(f"{lab} {p:.2f}" for lab, p in r.tags)), highlight=False,
                      soft_wrap=True)
            for w in r.windows:
                out.print(escape(f"  {w.start:8.2f}-{w.end:8.2f} s: " + ", ".join(f"{lab} {p:.2f}" for lab, p in w.tags)),
                          highlight=False, soft_wrap=True)
        for e in errors:
            console.print(f"[red]skipped[/] {escape(e['path'] + ': ' + e['error'])}", highlight=False)
    if errors and not results:
        sys.exit(2)


def register(app: typer.Typer) -> None:
    """Add ``tag`` to ``app``."""
    app.command()(tag)
