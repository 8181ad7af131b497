"""CLI commands: ``sonotype corpus list | show | download`` - thin wrappers over sonotype.corpora."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import typer

corpus_app = typer.Typer(help="List, inspect and download corpora.", no_args_is_help=True, rich_markup_mode=None)

_MAX_ROWS = 30


def _parse_options(pairs: list[str]) -> dict[str, object]:
    from sonotype.errors import ConfigError

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option expects KEY=VALUE, got {pair!r}")
        out[key.strip().replace("-", "_")] = value
    return out


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


@corpus_app.command("list")
def list_corpora() -> None:
    """List the corpus loaders and whether each can be downloaded automatically."""
    from sonotype.cli._common import out
    from sonotype.corpora import CORPORA
    from sonotype.corpora.base import get_loader

    get_loader("folder")  # imports every corpus module
    for name in sorted(CORPORA):
        module = importlib.import_module(f"sonotype.corpora.{name}")
        doc = (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""
        if getattr(module, "MANUAL", None):
            how = "manual"
        elif getattr(module, "DOWNLOADS", None) or callable(getattr(module, "fetch", None)):
            how = "download"
        else:
            how = "-"
        out.print(f"[bold]{name:<8}[/] {how:<9} {doc}", highlight=False, soft_wrap=True)


@corpus_app.command("show")
def show(
    name: str = typer.Argument(..., help="Corpus loader name (see `sonotype corpus list`)."),
    root: Path = typer.Argument(..., help="Corpus root folder."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    option: list[str] = typer.Option([], "--option", "-o", help="Loader option KEY=VALUE (repeatable)."),
    no_headers: bool = typer.Option(False, "--no-headers", help="Do not read file headers (faster)."),
) -> None:
    """Clips per class and per group, total duration, sample rates and skipped files."""
    from rich.table import Table

    from sonotype.cli._common import out
    from sonotype.corpora import load_corpus
    from sonotype.corpora.describe import describe

    manifest = load_corpus(name, root, **_parse_options(option))
    d = describe(manifest, read_headers=not no_headers)
    if as_json:
        typer.echo(json.dumps(d, indent=2, ensure_ascii=False))
        return
    out.print(
        f"[bold]{d['corpus']}[/] {d['root']}: {d['n_clips']} clips, {len(d['classes'])} classes, "
        f"{len(d['groups'])} groups, {_duration(d['total_duration'])}",
        highlight=False,
        soft_wrap=True,
    )
    classes = Table("class", "clips", title="per class")
    for k, v in d["classes"].items():
        classes.add_row(k, str(v))
    out.print(classes)
    groups = Table("group", "clips", title=f"per group ({len(d['groups'])})")
    for k, v in list(d["groups"].items())[:_MAX_ROWS]:
        groups.add_row(k, str(v))
    if len(d["groups"]) > _MAX_ROWS:
        groups.add_row("...", f"{len(d['groups']) - _MAX_ROWS} more")
    out.print(groups)
    if d["sample_rates"]:
        rates = ", ".join(f"{sr} Hz x {n}" for sr, n in d["sample_rates"].items())
        out.print(f"sample rates: {rates}", highlight=False, soft_wrap=True)
    if d["mean_duration"] is not None:
        out.print(
            f"duration per clip: mean {d['mean_duration']:.2f} s, min {d['min_duration']:.2f} s, max {d['max_duration']:.2f} s",
            highlight=False,
            soft_wrap=True,
        )
    out.print(f"skipped: {len(d['skipped'])}", highlight=False, soft_wrap=True)
    for s in d["skipped"][:_MAX_ROWS]:
        out.print(f"  {s['path']}: {s['reason']}", highlight=False, markup=False, soft_wrap=True)
    if len(d["skipped"]) > _MAX_ROWS:
        out.print(
            f"  ... {len(d['skipped']) - _MAX_ROWS} more (use --json for all)",
            highlight=False,
            soft_wrap=True,
        )


@corpus_app.command("download")
def download(
    name: str = typer.Argument(..., help="Corpus name."),
    dest: Path = typer.Argument(..., help="Folder to download and unpack into."),
    sha256: str | None = typer.Option(None, "--sha256", help="Expected sha256 of the corpus archive."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Download and unpack a corpus (resumable, checksum-verified); prints manual steps otherwise."""
    from sonotype.cli._common import out
    from sonotype.corpora.download import download_corpus

    root = download_corpus(name, dest, sha256=sha256, progress=not quiet)
    out.print(
        f"{name} is in {root}; check it with: sonotype corpus show {name} {root}",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add the ``corpus`` command group to ``app``."""
    app.add_typer(corpus_app, name="corpus")
