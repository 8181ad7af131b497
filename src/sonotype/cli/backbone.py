"""CLI commands: ``backbone list`` (known encoders, what is here) and ``backbone fetch``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sonotype.cli._common import out

backbone_app = typer.Typer(
    help="Pretrained audio encoders: list the ones sonotype knows, fetch one (safetensors only).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``backbone`` group to `app`, and ``bench backbone`` to the ``bench`` group."""
    from sonotype.cli.features import bench_app

    app.add_typer(backbone_app, name="backbone")
    bench_app.command("backbone")(bench_backbone)


def bench_backbone(
    model: str = typer.Argument(..., help="Backbone folder (or a known name / hub id found locally)."),
    speech: Path | None = typer.Option(None, "--speech", help="Folder of clips to time (default: generated speech-like)."),
    clips: int = typer.Option(24, "--clips", "-n", help="Number of clips (spread evenly over the folder)."),
    runtime: list[str] = typer.Option([], "--runtime", help="Runtimes to time (repeatable; default: all)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Clips per forward pass."),
    repeats: int = typer.Option(1, "--repeats", help="Timed passes per runtime (the best is kept)."),
    threads: int = typer.Option(1, "--threads", help="Threads for torch and onnxruntime (1 = per-core speed)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Time every backbone.runtime on the same clips: x real time per core, cosine distance to torch float32."""
    import warnings

    from sonotype.backbones.config import RUNTIMES
    from sonotype.bench.backbone import bench_backbone as run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the bf16 fallback note: the table says it
        r = run(model, speech=speech, clips=clips, runtimes=tuple(runtime) or RUNTIMES, batch_size=batch_size,
                repeats=repeats, threads=threads)
    if as_json:
        typer.echo(json.dumps(r))
        return
    from rich.table import Table

    t = Table(title=f"{r['model_type']} encoder, {r['clips']} clips ({r['source']}), {r['audio_seconds']:.0f} s of audio, "
                    f"{r['threads']} thread(s), {r['cpu']}")
    for col in ("runtime", "x real time / core", "CPU-s / audio-h", "vs torch", "max cosine distance", "set-up s"):
        t.add_column(col, justify="left" if col == "runtime" else "right")
    for name, v in r["runtimes"].items():
        label = name + ("" if v.get("native", True) else " (emulated)")
        t.add_row(label, f"{v['x_realtime_per_core']:.1f}", f"{v['cpu_seconds_per_audio_hour']:.0f}",
                  f"{v['speedup_vs_torch']:.2f}x", f"{v['max_cosine_distance']:.2g}", f"{v['setup_seconds']:.1f}")
    out.print(t)
    out.print(f"fastest: {r['fastest']}; distance = largest cosine distance to torch float32 over the clips, every "
              "hidden state and both poolings (mean, mean+std)", highlight=False, soft_wrap=True)


def _present(hub_id: str, dirs: list[Path]) -> str:
    """Where a hub model is available here: a fetched folder, the HF cache, or ''."""
    from sonotype.backbones.load import _cached, _candidates, _marker

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

    from sonotype.backbones.load import ALIASES, search_dirs

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
    from sonotype.backbones.load import CONFIG_FILE, _candidates, _marker, _shape

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
    from sonotype.backbones.fetch import fetch
    from sonotype.backbones.load import MARKER_FILE

    folder = fetch(name, revision=revision, dest_dir=dest, force=force)
    marker = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    size = sum(int(v) for v in marker.get("files", {}).values())
    out.print(
        f"{marker['hub_id']} at {marker['revision'][:12]} ({marker['requested_revision']}) in {folder}: "
        f"{len(marker.get('files', {}))} files, {size / 1e6:.1f} MB, encoder digest {marker['digest']}",
        highlight=False, soft_wrap=True,
    )
    out.print(f"use it with --backbone {name} (or --backbone {folder})", highlight=False, soft_wrap=True)
