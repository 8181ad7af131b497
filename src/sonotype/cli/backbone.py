"""CLI commands: ``backbone list`` (known encoders, what is here) and ``backbone fetch``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import typer
from rich.markup import escape

from sonotype.backbones.catalog import ALIASES, NATIVE_ENCODERS
from sonotype.backbones.native import read_native_config
from sonotype.cli._common import console, out
from sonotype.errors import ConfigError, SonotypeError
from sonotype.utils.licences import encoder_licence

backbone_app = typer.Typer(
    help="Pretrained audio encoders: list the ones sonotype knows, fetch one (safetensors only).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``backbone`` group to `app`."""

    app.add_typer(backbone_app, name="backbone")


def _present(name: str, hub_id: str, dirs: list[Path]) -> str:
    """Where a hub model is available here: a folder named after it, a fetched folder, the HF cache, or ''."""
    from sonotype.backbones.folders import (  # heavy (torch): lazy for a fast --help
        cached_snapshot,
        candidates,
        named_folder,
        read_marker,
    )  # heavy (torch): lazy for a fast --help

    named = named_folder(name, dirs)
    if named is not None and read_native_config(named) is None:
        return str(named)
    for folder in candidates(dirs):
        if read_marker(folder).get("hub_id") == hub_id:
            return str(folder)
    try:
        snap = cached_snapshot(hub_id, None)
    except Exception:  # huggingface_hub missing or its cache unreadable: simply not present
        snap = None
    return f"{snap} (HF cache)" if snap else ""


def _native_present(name: str, family: str, digest: str | None, dirs: list[Path]) -> tuple[str, bool]:
    """(the folder ``name`` under the searched folders when it holds that family, whether its tensors are the release's)."""
    from sonotype.backbones.folders import (
        named_folder,  # heavy (torch): lazy for a fast --help
    )  # heavy (torch): lazy for a fast --help

    folder = named_folder(name, dirs)
    cfg = read_native_config(folder) if folder is not None else None
    if folder is None or cfg is None or cfg.get("family") != family:
        return "", False
    return str(folder), digest is not None and cfg.get("tensor_digest") == digest


def _rows(dirs: list[Path]) -> list[dict]:
    """Every encoder sonotype knows by name: the transformers aliases, then the native encoders."""
    from sonotype.backbones.sources import (  # heavy (torch): lazy for a fast --help
        NATIVE_SOURCES,
    )


    rows = [
        {"name": a.name, "kind": "transformers", "family": a.family, "hub_id": a.hub_id,
         "source": f"https://huggingface.co/{a.hub_id}", "encoder_parameters": a.parameters,
         "cpu_per_audio_hour": a.cpu_per_audio_hour, "licence": encoder_licence(a.hub_id).title,
         "present": _present(a.name, a.hub_id, dirs), "note": a.note}
        for a in ALIASES.values()
    ]
    for e in NATIVE_ENCODERS.values():
        src = NATIVE_SOURCES.get(e.name)
        where, verified = _native_present(e.name, e.family, getattr(src, "tensor_digest", None), dirs)
        rows.append({"name": e.name, "kind": "native", "family": e.family, "hub_id": "", "source": e.source,
                     "encoder_parameters": e.parameters, "cpu_per_audio_hour": e.cpu_per_audio_hour,
                     "licence": encoder_licence(e.family).title, "present": where, "verified": verified,
                     "note": e.note})
    return rows


@backbone_app.command("list")
def list_backbones(
    backbone_dir: list[Path] = typer.Option([], "--backbone-dir", help="Also look in this folder (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
) -> None:
    """The encoders sonotype knows by name: family, source, size, measured CPU cost, licence, whether present here."""
    from rich.table import Table  # console output only

    from sonotype.backbones.folders import (
        search_dirs,  # heavy (torch): lazy for a fast --help
    )  # heavy (torch): lazy for a fast --help

    dirs = search_dirs(backbone_dir)
    rows = _rows(dirs)
    if as_json:
        out.print_json(json.dumps({"searched": [str(d) for d in dirs], "backbones": rows}))
        return
    t = Table("name", "family", "source", "encoder params", "CPU per audio hour", "licence", "here")
    for r in rows:
        here = r["present"] or "-"
        if r["present"] and r["kind"] == "native" and not r["verified"]:
            here += " (other weights)"
        source = r["hub_id"] if r["kind"] == "transformers" else r["source"]
        t.add_row(r["name"], r["family"], source, r["encoder_parameters"], r["cpu_per_audio_hour"], r["licence"], here)
    out.print(t)
    from sonotype.backbones.checkpoint import (  # heavy (torch): lazy for a fast --help
        CONFIG_FILE,
        encoder_shape,
    )  # heavy (torch): lazy for a fast --help
    from sonotype.backbones.folders import (  # heavy (torch): lazy for a fast --help
        candidates,
        read_marker,
    )  # heavy (torch): lazy for a fast --help

    shown = {Path(r["present"]) for r in rows if r["present"] and not r["present"].endswith("(HF cache)")}
    for folder in candidates(dirs):  # folders of unknown origin (no fetch record): usable by path
        if folder in shown or read_marker(folder).get("hub_id"):
            continue
        native = read_native_config(folder)
        if native is not None:
            out.print(f"also here: {folder} (native {native['family']} encoder, tensor digest "
                      f"{str(native.get('tensor_digest'))[:16]}); use it with --backbone {folder}",
                      highlight=False, soft_wrap=True)
            continue
        try:
            model_type, n_hidden, dim = encoder_shape(json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, SonotypeError):
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
    source_file: Path | None = typer.Option(
        None, "--from", help="Native encoders: convert this copy instead of downloading (the musicnn wheel or a "
                             "checkpoint folder with labels.txt; the EfficientAT .pt). Same checks."),
    url: str | None = typer.Option(None, "--url", help="Native encoders: download the file from this address "
                                                       "instead (a mirror); checked the same way."),
    index_url: str | None = typer.Option(
        None, "--index-url", help="musicnn-msd: the package index to look the wheel up in (default "
                                  "$SONOTYPE_PYPI_URL, else https://pypi.org)."),
) -> None:
    """Download NAME and check it: a hub encoder's safetensors, config and preprocessor files (nothing else),
    or a native encoder's released weights (musicnn-msd: the musicnn 0.1.0 wheel from the package index;
    efficientat-mn04: the EfficientAT release file), converted to safetensors."""
    from sonotype.backbones.sources import (  # heavy (torch): lazy for a fast --help
        NATIVE_SOURCES,
    )


    if name in NATIVE_SOURCES:
        _fetch_native(name, dest=dest, force=force, source_file=source_file, url=url, index_url=index_url,
                      revision=revision)
        return
    if source_file is not None or url is not None or index_url is not None:
        raise ConfigError(f"--from, --url and --index-url are for the natively converted encoders "
                          f"({', '.join(NATIVE_SOURCES)}); for {name}, copy its folder here and use its path")
    from sonotype.backbones.fetch import (
        fetch,  # heavy (torch): lazy for a fast --help
    )  # heavy (torch): lazy for a fast --help
    from sonotype.backbones.folders import (
        MARKER_FILE,  # heavy (torch): lazy for a fast --help
    )  # heavy (torch): lazy for a fast --help

    folder = fetch(name, revision=revision, dest_dir=dest, force=force)
    marker = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    size = sum(int(v) for v in marker.get("files", {}).values())
    out.print(
        f"{marker['hub_id']} at {marker['revision'][:12]} ({marker['requested_revision']}) in {folder}: "
        f"{len(marker.get('files', {}))} files, {size / 1e6:.1f} MB, encoder digest {marker['digest']}",
        highlight=False, soft_wrap=True,
    )
    out.print(f"use it with --backbone {name} (or --backbone {folder})", highlight=False, soft_wrap=True)


def _fetch_native(name: str, *, dest: Path | None, force: bool, source_file: Path | None, url: str | None,
                  index_url: str | None, revision: str | None) -> None:
    from sonotype.backbones.sources import (  # heavy (torch): lazy for a fast --help
        fetch_native,
    )

    if revision is not None:
        raise ConfigError(f"{name} is converted from one fixed release; it has no revisions (drop --revision)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the notes are printed below, once
        r = fetch_native(name, dest_dir=dest, source_file=source_file, url=url, index=index_url, force=force,
                         progress=True)
    rec = r.record
    if not r.converted:
        out.print(f"{name} is already in {r.folder} (tensor digest {rec.get('tensor_digest') or 'as released'}); "
                  "--force converts it again", highlight=False, soft_wrap=True)
    else:
        origin = rec.get("from") or rec.get("url")
        sha = f", sha256 {rec['sha256']}" if rec.get("sha256") else ""
        out.print(f"{name} ({rec.get('family')}, {rec.get('licence')} licence) in {r.folder}: from {origin}{sha}; "
                  f"tensor digest {rec.get('tensor_digest')}", highlight=False, soft_wrap=True)
    for note in r.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(note)}", soft_wrap=True)
    out.print(f"use it with --backbone {name} (or --backbone {r.folder})", highlight=False, soft_wrap=True)
