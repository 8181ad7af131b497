"""CLI: train, run (recipes), evaluate (cross-corpus), predict, results, demo."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import typer

from ._common import console, out

RUNTIMES = ("torch", "onnx")


def _config(config: Path | None, overrides: list[str], base: dict | None = None):
    from ..config import load_config

    return load_config(config, overrides, base=base)


def _with_backbone(config: Path | None, backbone: str, source: str, quiet: bool) -> tuple[dict, str]:
    """The config file as a plain dict switched to the frozen encoder (before overrides), printing each change."""
    from ..config import load_config
    from ..defaults import resolve_backbone, switch_to_backbone

    plain = load_config(config).to_dict() if config else {}
    switched, notes = switch_to_backbone(plain, resolve_backbone(backbone))
    if not quiet:
        for note in notes:
            console.print(f"[yellow]note[/] --backbone: {note}", highlight=False)
    return switched, f"{source}, switched to backbone {backbone}"


def train(
    corpus: str = typer.Option(..., "--corpus", help="Corpus loader name (see `sonotype corpus list`)."),
    root: Path = typer.Option(..., "--root", help="Corpus root folder."),
    out_dir: Path = typer.Option(..., "--out", help="Run directory to create."),
    config: Path | None = typer.Option(None, "--config", help="YAML run config (a recipe)."),
    features: str | None = typer.Option(None, "--features", help="Comma list of frame features, e.g. mfcc,chroma."),
    representation: str | None = typer.Option(None, "--representation", help="stats | frames | windows | logmel."),
    model: str | None = typer.Option(None, "--model", help="Model name (see sonotype.models)."),
    ensemble: int | None = typer.Option(None, "--ensemble", help="Train N seeds of the model and average them."),
    protocol: str | None = typer.Option(None, "--protocol", help="auto | holdout | kfold:K | logo | official | random."),
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
    force: bool = typer.Option(False, "--force", help="Overwrite an existing run directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics object on stdout."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress output."),
) -> None:
    """Train and evaluate a classifier on a corpus; write model, metrics, plots and report.

    Without --config and --model the configuration measured best for the corpus is used (its
    `best` recipe, or the default for speech, music or other sounds; --kind chooses).
    """
    from ..experiment import run_experiment

    base, source = None, f"config {config}" if config else "built-in defaults"
    if config is None and model is None:
        from ..defaults import default_recipe

        config, source = default_recipe(corpus, kind)
    elif kind is not None:
        from ..errors import ConfigError

        raise ConfigError("--kind chooses a default configuration; it does not combine with --config or --model")
    if model and not config:
        source = f"built-in defaults with --model {model}"
    sets = [f"corpus.name={corpus}", f"corpus.root={root}"]
    if features:
        sets.append(f"features.features=[{features}]")
    if representation:
        sets.append(f"representation.kind={representation}")
    if model:
        sets.append(f"model.name={model}")
    if ensemble is not None:
        sets.append(f"model.ensemble={ensemble}")
    if protocol:
        sets.append(f"protocol={protocol}")
    if jobs is not None:
        sets.append(f"jobs={jobs}")
    if backbone is not None:
        base, source = _with_backbone(config, backbone, source, quiet)
        config = None
    cfg = _config(config, [*sets, *overrides], base)
    if not quiet:
        console.print(f"configuration: {source}", highlight=False)
    metrics = run_experiment(cfg, out_dir, force=force, progress=not quiet, config_source=source)
    if as_json:
        out.print_json(json.dumps(metrics))


def run(
    recipe: str = typer.Argument(..., help="Recipe name (see `sonotype recipes`) or path to a YAML file."),
    root: Path | None = typer.Option(None, "--root", help="Corpus root folder (overrides the recipe's)."),
    out_dir: Path | None = typer.Option(None, "--out", help="Run directory (default runs/<recipe>)."),
    overrides: list[str] = typer.Option([], "--set", help="Dotted override key.sub=value (repeatable)."),
    backbone: str | None = typer.Option(
        None, "--backbone", help="Frozen pretrained encoder (folder or hub id): embeddings + the recommended head."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing run directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics object on stdout."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress output."),
) -> None:
    """Run a recipe: one seed experiment or its honest twin."""
    from ..experiment import run_experiment
    from ..recipes import RECIPES_DIR, recipe_path

    path = recipe_path(recipe)
    source = f"recipe {path.stem}" if path.resolve().parent == RECIPES_DIR else f"config {path}"
    base = None
    sets = [f"corpus.root={root}"] if root else []
    if backbone is not None:
        base, source = _with_backbone(path, backbone, source, quiet)
    cfg = _config(None if base is not None else path, [*sets, *overrides], base)
    if not quiet:
        console.print(f"configuration: {source}", highlight=False)
    metrics = run_experiment(cfg, out_dir or Path("runs") / cfg.name, force=force, progress=not quiet,
                             config_source=source)
    if as_json:
        out.print_json(json.dumps(metrics))


def recipes() -> None:
    """List the recipes shipped with sonotype."""
    from rich.table import Table

    from ..recipes import list_recipes

    t = Table("recipe", "corpus", "description")
    for r in list_recipes():
        t.add_row(r["name"], r["corpus"], r["description"])
    out.print(t)


def evaluate(
    model: Path = typer.Argument(..., help="Saved model directory."),
    corpus: str = typer.Option(..., "--corpus", help="Corpus loader name."),
    root: Path = typer.Option(..., "--root", help="Corpus root folder."),
    out_dir: Path = typer.Option(..., "--out", help="Directory for metrics.json and report.html."),
    overrides: list[str] = typer.Option([], "--op", help="Label operation as YAML, e.g. '{keep: [happy, sad]}'."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics object on stdout."),
) -> None:
    """Evaluate a saved model on another corpus, on the labels both share."""
    import yaml

    from .. import report as rpt
    from ..config import CrossEvalConfig
    from ..experiment import evaluate_on_corpus
    from ..io import atomic_dir, atomic_write_text

    ops = [yaml.safe_load(o) for o in overrides]
    cc = CrossEvalConfig(corpus=corpus, root=str(root), ops=ops)
    with atomic_dir(out_dir, force=force) as tmp:
        metrics = evaluate_on_corpus(model, cc, progress=True)
        metrics["model"] = str(model)
        atomic_write_text(tmp / "metrics.json", json.dumps(metrics, indent=2))
        plots = rpt.write_plots(tmp, history=None, metrics=metrics, examples=[])
        rpt.write_report(tmp, config={"model": str(model), "corpus": corpus, "root": str(root), "ops": ops},
                         metrics=metrics, plots=plots, title=f"{Path(model).name} on {corpus}")
    console.print(
        f"[green]done[/] {out_dir}: labels kept {metrics['labels_kept']}, accuracy {metrics['accuracy']:.3f}, "
        f"balanced {metrics['balanced_accuracy']:.3f} ({metrics['n_test_clips']} clips)"
    )
    if as_json:
        out.print_json(json.dumps(metrics))


def _audio_files(inputs: list[Path]) -> list[Path]:
    from ..audio import AUDIO_EXTENSIONS
    from ..errors import SonotypeError

    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS))
        elif p.exists():
            files.append(p)
        else:
            raise SonotypeError(f"no such file or folder: {p}")
    return files


def predict(
    model: Path = typer.Argument(..., help="Saved model directory."),
    inputs: list[Path] = typer.Argument(..., help="Audio files or folders."),
    window: float | None = typer.Option(None, "--window", help="Segment length in seconds for the timeline."),
    hop: float | None = typer.Option(None, "--hop", help="Segment hop in seconds (default: window)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per file (a JSON list)."),
    csv_out: Path | None = typer.Option(None, "--csv", help="Write one row per file: path, label, probabilities."),
    plot: Path | None = typer.Option(None, "--plot", help="Folder for a timeline + probability plot per file."),
    runtime: str = typer.Option("torch", "--runtime", help="torch | onnx"),
    onnx_path: Path | None = typer.Option(None, "--onnx", help="ONNX file (default MODEL/model.onnx, exported if missing)."),
) -> None:
    """Classify audio files with a saved model."""
    from rich.table import Table

    from ..errors import ParameterError
    from ..io import atomic_write_text
    from ..predict import load_model

    if runtime not in RUNTIMES:
        raise ParameterError(f"--runtime must be one of {RUNTIMES}, got {runtime!r}")
    if runtime == "onnx":
        from ..export import export_onnx, load_onnx_classifier

        onnx_file = onnx_path or model / "model.onnx"
        if not onnx_file.exists():
            export_onnx(model, onnx_file)
        clf = load_onnx_classifier(model, onnx_file)
    else:
        clf = load_model(model)
    files = _audio_files(inputs)
    results, errors = [], []
    for f in files:
        try:
            results.append(clf.predict(f, window=window, hop=hop))
        except Exception as exc:  # reported per file, the run goes on
            from ..errors import SonotypeError

            if not isinstance(exc, SonotypeError):
                raise
            errors.append({"path": str(f), "error": str(exc)})
    if csv_out:
        import io

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["path", "label", *[f"p_{lab}" for lab in clf.labels]])
        for r in results:
            w.writerow([r.path, r.label, *[f"{r.probabilities[lab]:.6f}" for lab in clf.labels]])
        atomic_write_text(csv_out, buf.getvalue())
    if plot:
        from ..report import plot_prediction

        plot.mkdir(parents=True, exist_ok=True)
        for r in results:
            plot_prediction(r, plot / f"{Path(r.path).stem}.png")
    if as_json:
        out.print_json(json.dumps({"model": clf.model_id, "results": [r.to_dict() for r in results], "errors": errors}))
    else:
        t = Table("file", "label", "p", "segments")
        for r in results:
            t.add_row(str(r.path), r.label, f"{r.probabilities[r.label]:.3f}", str(len(r.segments)))
        out.print(t)
        for e in errors:
            console.print(f"[red]skipped[/] {e['path']}: {e['error']}", highlight=False)
    if errors and not results:
        sys.exit(2)


def results(
    dirs: list[Path] = typer.Argument(..., help="Run directories (or folders of runs)."),
    csv_out: Path | None = typer.Option(None, "--csv", help="Also write the table as CSV."),
) -> None:
    """Collect finished runs' metrics.json into one table (markdown on stdout)."""
    from ..io import atomic_write_text
    from ..results import collect_results, results_table

    rows = collect_results(list(dirs))
    typer.echo(results_table(rows, fmt="markdown"))  # plain echo: rich would wrap the table at 80 columns
    if csv_out:
        atomic_write_text(csv_out, results_table(rows, fmt="csv"))


def demo(
    out_dir: Path = typer.Option(Path("demo_out"), "--out", help="Folder for the demo corpus, run and predictions."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier demo output."),
) -> None:
    """Generate a small corpus and run train -> evaluate -> predict -> report on it (no download)."""
    from ..demo import run_demo

    run_demo(out_dir, force=force)


def register(app: typer.Typer) -> None:
    """Add the training and prediction commands to ``app``."""
    app.command()(train)
    app.command()(run)
    app.command()(recipes)
    app.command()(evaluate)
    app.command()(predict)
    app.command()(results)
    app.command()(demo)
