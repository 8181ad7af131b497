"""CLI commands: ``backbone list`` (known encoders, what is here) and ``backbone fetch``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ._common import out

backbone_app = typer.Typer(
    help="Pretrained audio encoders: list the ones sonotype knows, fetch one (safetensors only).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``backbone`` group to `app`."""
    app.add_typer(backbone_app, name="backbone")


def _present(hub_id: str, dirs: list[Path]) -> str:
    """Where a hub model is available here: a fetched folder, the HF cache, or ''."""
    from ..backbones.load import _cached, _candidates, _marker

    for folder in _candidates(dirs):
        if _marker(folder).get("hub_id") == hub_id:
            return str(folder)
    try:
        snap = _cached(hub_id, None)
    except Exception:  # huggingface_hub missing or its cache unreadable: simply not present
        snap = None
    return f"{snap} (HF cache)" if snap else ""


@backbone_app.command("list")
def list_backbones(
    backbone_dir: list[Path] = typer.Option([], "--backbone-dir", help="Also look in this folder (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
) -> None:
    """The encoders sonotype knows by name: hub id, size, measured CPU cost, and whether present here."""
    from rich.table import Table

    from ..backbones.load import ALIASES, search_dirs

    dirs = search_dirs(backbone_dir)
    rows = [
        {"name": a.name, "hub_id": a.hub_id, "encoder_parameters": a.parameters,
         "cpu_per_audio_hour": a.cpu_per_audio_hour, "present": _present(a.hub_id, dirs), "note": a.note}
        for a in ALIASES.values()
    ]
    if as_json:
        out.print_json(json.dumps({"searched": [str(d) for d in dirs], "backbones": rows}))
        return
    t = Table("name", "hub id", "encoder params", "CPU per audio hour", "here")
    for r in rows:
        t.add_row(r["name"], r["hub_id"], r["encoder_parameters"], r["cpu_per_audio_hour"], r["present"] or "-")
    out.print(t)
    from ..backbones.load import CONFIG_FILE, _candidates, _marker, _shape

    for folder in _candidates(dirs):  # folders of unknown origin (no fetch record): usable by path
        if not _marker(folder).get("hub_id"):
            try:
                model_type, n_hidden, dim = _shape(json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError):
                continue
            out.print(f"also here: {folder} ({model_type or 'unknown type'}, {n_hidden - 1} layers, width {dim}); "
                      f"use it with --backbone {folder}", highlight=False, soft_wrap=True)
    out.print(f"searched: {', '.join(map(str, dirs))} and the Hugging Face cache; "
              "fetch one with `sonotype backbone fetch NAME`", highlight=False, soft_wrap=True)


@backbone_app.command("fetch")
def fetch_backbone(
    name: str = typer.Argument(..., help="A known name (see `sonotype backbone list`) or a hub id 'org/name'."),
    revision: str | None = typer.Option(None, "--revision", help="Branch, tag or commit (default main); pinned."),
    dest: Path | None = typer.Option(None, "--dir", help="Parent folder (default ~/.cache/sonotype/backbones)."),
    force: bool = typer.Option(False, "--force", help="Download again even when present at the same commit."),
) -> None:
    """Download NAME's safetensors, config and preprocessor files (nothing else) and check the encoder."""
    from ..backbones.fetch import fetch
    from ..backbones.load import MARKER_FILE

    folder = fetch(name, revision=revision, dest_dir=dest, force=force)
    marker = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    size = sum(int(v) for v in marker.get("files", {}).values())
    out.print(
        f"{marker['hub_id']} at {marker['revision'][:12]} ({marker['requested_revision']}) in {folder}: "
        f"{len(marker.get('files', {}))} files, {size / 1e6:.1f} MB, encoder digest {marker['digest']}",
        highlight=False, soft_wrap=True,
    )
    out.print(f"use it with --backbone {name} (or --backbone {folder})", highlight=False, soft_wrap=True)
