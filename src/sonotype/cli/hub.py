"""CLI commands: ``sonotype push MODEL_DIR user/name`` and ``sonotype pull hf://user/name`` - thin wrappers over sonotype.inference.hub."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sonotype.cli._common import out


def register(app: typer.Typer) -> None:
    """Add ``push`` and ``pull`` to ``app``."""
    app.command("push")(push)
    app.command("pull")(pull)


def push(
    model: Path = typer.Argument(..., help="Saved model directory (RUN_DIR/model)."),
    repo: str = typer.Argument(..., help="Hub repository user/name (created when missing)."),
    private: bool = typer.Option(False, "--private", help="Create the repository private."),
    revision: str | None = typer.Option(None, "--revision", help="Branch to commit to (created when missing; "
                                        "default main)."),
    message: str | None = typer.Option(None, "--message", "-m", help="Commit message."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Upload a model (model.json, safetensors, a model card) to the Hugging Face Hub."""
    from sonotype.inference.hub import push as run  # huggingface_hub is imported only by the hub commands

    r = run(model, repo, private=private, revision=revision, message=message)
    if as_json:
        typer.echo(json.dumps(r))
        return
    out.print(f"pushed {model} to {r['url']} ({r['revision']}, commit {r['commit'][:12]}); load exactly this upload "
              f"with: sonotype predict {r['ref']} clip.wav", highlight=False, soft_wrap=True)


def pull(
    ref: str = typer.Argument(..., help="hf://user/name or hf://user/name@revision (branch, tag or commit)."),
) -> None:
    """Download a model from the hub into the cache (commit pinned, only JSON and safetensors) and print its folder."""
    from sonotype.inference.hub import pull as run  # huggingface_hub is imported only by the hub commands

    typer.echo(str(run(ref)))
