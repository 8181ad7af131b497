"""CLI: train, run (recipes), recipes, results, demo: parse, call the pipeline, print."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sonotype.cli._common import QUIET_HELP, console, messages, out, scores
from sonotype.errors import ParameterError
from sonotype.recipes import list_recipes
from sonotype.reporting.results import collect_results, results_table
from sonotype.utils.io import atomic_write_text


def train(
    corpus: list[str] = typer.Option(..., "--corpus", help="Corpus loader name (see `sonotype corpus list`) with "
                                     "--root; or NAME=ROOT, repeatable: several corpora in one run."),
    root: Path | None = typer.Option(None, "--root", help="Corpus root folder (one --corpus NAME)."),
    out_dir: Path = typer.Option(..., "--out", help="Run directory to create."),
    config: Path | None = typer.Option(None, "--config", help="YAML run config (a recipe)."),
    features: str | None = typer.Option(None, "--features", help="Comma list of frame features, e.g. mfcc,chroma."),
    representation: str | None = typer.Option(None, "--representation", help="stats | frames | windows | logmel."),
    model: str | None = typer.Option(None, "--model", help="Model name (see sonotype.models)."),
    ensemble: int | None = typer.Option(None, "--ensemble", help="Train N seeds of the model and average them."),
    protocol: str | None = typer.Option(None, "--protocol", help="auto | holdout | kfold:K | logo | locos | official | random."),
    overrides: list[str] = typer.Option([], "--set", help="Dotted override key.sub=value (repeatable)."),
    jobs: int | None = typer.Option(
        None, "--jobs", help="Worker processes for features, augmented copies and ensemble members."
    ),
    kind: str | None = typer.Option(
        None, "--kind", help="speech | music | sounds: the measured default for that kind (folder corpora)."
    ),
    backbone: str | None = typer.Option(
        None, "--backbone", help="Frozen pretrained encoder (folder or hub id): embeddings + the recommended head."
    ),
    scratch: bool = typer.Option(
        False, "--scratch", help="The from-scratch default even when a pretrained encoder is on this machine."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing run directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics object on stdout."),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Train and evaluate a classifier on a corpus; write model, metrics, plots and report.

    Without --config and --model the configuration measured best for the corpus is used: its
    `whisper` recipe when the Whisper-base encoder is on this machine ($SONOTYPE_BACKBONES or
    `sonotype backbone fetch whisper-base`; --scratch to skip it), else its `best` recipe, or
    the default for speech, music or other sounds (--kind chooses).
    """
    from sonotype.pipeline.experiment import run_experiment  # heavy (torch): lazy for a fast --help
    from sonotype.pipeline.plan import plan_train  # heavy (torch): lazy for a fast --help

    plan = plan_train(corpus=corpus, root=root, config=config, features=features, representation=representation,
                      model=model, ensemble=ensemble, protocol=protocol, jobs=jobs, kind=kind, scratch=scratch,
                      backbone=backbone, overrides=overrides)
    _announce(plan, quiet)
    metrics = run_experiment(plan.cfg, out_dir, force=force, progress=not quiet, console=messages(quiet),
                             config_source=plan.source)
    _finish(metrics, out_dir, as_json=as_json, quiet=quiet)


def run(
    recipe: str = typer.Argument(..., help="Recipe name (see `sonotype recipes`) or path to a YAML file."),
    root: Path | None = typer.Option(None, "--root", help="Corpus root folder (overrides the recipe's)."),
    corpus_roots: list[str] = typer.Option([], "--corpus", help="NAME=ROOT: the root of the recipe's corpus NAME "
                                           "(repeatable; for recipes over several corpora)."),
    out_dir: Path | None = typer.Option(None, "--out", help="Run directory (default runs/<recipe>)."),
    overrides: list[str] = typer.Option([], "--set", help="Dotted override key.sub=value (repeatable)."),
    backbone: str | None = typer.Option(
        None, "--backbone", help="Frozen pretrained encoder (folder or hub id): embeddings + the recommended head."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing run directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics object on stdout."),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Run a recipe: one seed experiment or its honest twin."""
    from sonotype.pipeline.experiment import run_experiment  # heavy (torch): lazy for a fast --help
    from sonotype.pipeline.plan import plan_recipe  # heavy (torch): lazy for a fast --help

    plan = plan_recipe(recipe, root=root, corpus_roots=corpus_roots, backbone=backbone, overrides=overrides)
    _announce(plan, quiet)
    run_dir = out_dir or Path("runs") / plan.cfg.name
    metrics = run_experiment(plan.cfg, run_dir, force=force, progress=not quiet, console=messages(quiet),
                             config_source=plan.source)
    _finish(metrics, run_dir, as_json=as_json, quiet=quiet)


def _announce(plan: object, quiet: bool) -> None:
    if quiet:
        return
    for note in plan.notes:  # type: ignore[attr-defined]
        console.print(f"[yellow]note[/] {note}", highlight=False)
    console.print(f"configuration: {plan.source}", highlight=False)  # type: ignore[attr-defined]


def _finish(metrics: dict, run_dir: Path, *, as_json: bool, quiet: bool) -> None:
    """The result: the metrics as JSON on stdout; under --quiet without --json, the summary line.

    (Without --quiet the run has printed that line itself, after its progress.)
    """
    if as_json:
        out.print_json(json.dumps(metrics))
    elif quiet:
        console.print(f"[green]done[/] {run_dir}: {scores(metrics)} ({metrics['n_test_clips']} test clips)")


def recipes() -> None:
    """List the recipes shipped with sonotype."""
    from rich.table import Table  # console output only


    t = Table("recipe", "corpus", "description")
    for r in list_recipes():
        t.add_row(r["name"], r["corpus"], r["description"])
    out.print(t)


def results(
    dirs: list[Path] = typer.Argument(..., help="Run directories (or folders of runs)."),
    csv_out: Path | None = typer.Option(None, "--csv", help="Also write the table as CSV."),
) -> None:
    """Collect finished runs' metrics.json into one table (markdown on stdout)."""

    rows = collect_results(list(dirs))
    if not rows:
        raise ParameterError(
            f"no metrics.json at or under {', '.join(map(str, dirs))}: give finished run directories "
            "(each holds the metrics.json that `sonotype train` or `run` wrote)"
        )
    typer.echo(results_table(rows, fmt="markdown"))  # plain echo: rich would wrap the table at 80 columns
    if csv_out:
        atomic_write_text(csv_out, results_table(rows, fmt="csv"))


def demo(
    out_dir: Path = typer.Option(Path("demo_out"), "--out", help="Folder for the demo corpus, run and predictions."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier demo output."),
) -> None:
    """Generate a small corpus and run train -> evaluate -> predict -> report on it (no download)."""
    from sonotype.pipeline.demo import run_demo  # heavy (torch): lazy for a fast --help

    run_demo(out_dir, force=force)


def register(app: typer.Typer) -> None:
    """Add the training commands to ``app``."""
    app.command()(train)
    app.command()(run)
    app.command()(recipes)
    app.command()(results)
    app.command()(demo)
