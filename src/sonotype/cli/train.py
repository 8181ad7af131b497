"""CLI: train, run (recipes), evaluate (cross-corpus), predict, results, demo."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import typer
import yaml

from sonotype.audio import AUDIO_EXTENSIONS
from sonotype.cli._common import console, messages, out
from sonotype.errors import AudioError, ConfigError, ParameterError, SonotypeError
from sonotype.inference.events import audacity_labels, merge_events, webvtt
from sonotype.inference.events import smooth as smooth_check
from sonotype.pipeline.kind import default_for_corpus
from sonotype.recipes import RECIPES_DIR, list_recipes, recipe_path
from sonotype.reporting.results import collect_results, results_table
from sonotype.utils.io import atomic_dir, atomic_write_text
from sonotype.utils.limits import Limits, check_windows

RUNTIMES = ("torch", "onnx")
QUIET_HELP = "No progress or notes: only the final result line (with --json, only the JSON); warnings and errors still show."


def _config(config: Path | None, overrides: list[str], base: dict | None = None):
    from sonotype.pipeline.config import load_config  # heavy (torch): lazy for a fast --help

    return load_config(config, overrides, base=base)


def _with_backbone(config: Path | None, backbone: str, source: str, quiet: bool) -> tuple[dict, str]:
    """The config file as a plain dict switched to the frozen encoder (before overrides), printing each change."""
    from sonotype.pipeline.config import load_config  # heavy (torch): lazy for a fast --help
    from sonotype.pipeline.defaults import (  # heavy (torch): lazy for a fast --help
        resolve_backbone,
        switch_to_backbone,
    )  # heavy (torch): lazy for a fast --help

    plain = load_config(config).to_dict() if config else {}
    switched, notes = switch_to_backbone(plain, resolve_backbone(backbone))
    if not quiet:
        for note in notes:
            console.print(f"[yellow]note[/] --backbone: {note}", highlight=False)
    return switched, f"{source}, switched to backbone {backbone}"


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

    corpus_sets, corpus, mixed_kind = _corpus_sets(corpus, root)
    base, source = None, f"config {config}" if config else "built-in defaults"
    if config is None and model is None:
        # An explicit --backbone starts from the encoder recipe too (its measured head settings).
        config, source = default_for_corpus(corpus, root, kind or mixed_kind, scratch=scratch,
                                            encoder=backbone is not None)
    else:
        if kind is not None:
            raise ConfigError("--kind chooses a default configuration; it does not combine with --config or --model")
        if scratch:
            raise ConfigError("--scratch chooses a default configuration; it does not combine with --config or --model")
    if scratch and backbone is not None:
        raise ConfigError("--scratch and --backbone contradict each other: choose one")
    if model and not config:
        source = f"built-in defaults with --model {model}"
    sets = list(corpus_sets)
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
    metrics = run_experiment(cfg, out_dir, force=force, progress=not quiet, console=messages(quiet),
                             config_source=source)
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

    path = recipe_path(recipe)
    source = f"recipe {path.stem}" if path.resolve().parent == RECIPES_DIR else f"config {path}"
    base = None
    sets = [f"corpus.root={root}"] if root else []
    if corpus_roots:
        from sonotype.pipeline.mixed import recipe_root_sets  # heavy (torch): lazy for a fast --help

        sets += recipe_root_sets(path, corpus_roots, root)
    if backbone is not None:
        base, source = _with_backbone(path, backbone, source, quiet)
    cfg = _config(None if base is not None else path, [*sets, *overrides], base)
    if not quiet:
        console.print(f"configuration: {source}", highlight=False)
    run_dir = out_dir or Path("runs") / cfg.name
    metrics = run_experiment(cfg, run_dir, force=force, progress=not quiet, console=messages(quiet),
                             config_source=source)
    _finish(metrics, run_dir, as_json=as_json, quiet=quiet)


def _corpus_sets(corpus: list[str], root: Path | None) -> tuple[list[str], str, str | None]:
    """Overrides for ``--corpus NAME --root ROOT`` or repeated ``--corpus NAME=ROOT``, the corpus name
    the defaults go by, and for several corpora of one kind (all speech) that kind."""

    if len(corpus) == 1 and "=" not in corpus[0]:
        if root is None:
            raise ConfigError(f"--corpus {corpus[0]} needs --root (or write --corpus {corpus[0]}=ROOT)")
        return [f"corpus.name={corpus[0]}", f"corpus.root={root}"], corpus[0], None
    if root is not None:
        raise ConfigError("--root goes with a single --corpus NAME; with several corpora give each as NAME=ROOT")
    from sonotype.pipeline.defaults import CORPUS_KINDS  # heavy (torch): lazy for a fast --help
    from sonotype.pipeline.mixed import parse_corpus_args  # heavy (torch): lazy for a fast --help

    entries = parse_corpus_args(corpus)
    if len(entries) == 1:
        return [f"corpus.name={entries[0]['name']}", f"corpus.root={entries[0]['root']}"], entries[0]["name"], None
    entries = [{**e, "root": str(Path(e["root"]).expanduser())} for e in entries]
    kinds = {CORPUS_KINDS.get(e["name"]) for e in entries}
    return [f"corpus={json.dumps(entries)}"], "mixed", kinds.pop() if len(kinds) == 1 and None not in kinds else None


def _finish(metrics: dict, run_dir: Path, *, as_json: bool, quiet: bool) -> None:
    """The result: the metrics as JSON on stdout; under --quiet without --json, the summary line.

    (Without --quiet the run has printed that line itself, after its progress.)
    """
    if as_json:
        out.print_json(json.dumps(metrics))
    elif quiet:
        console.print(f"[green]done[/] {run_dir}: {_scores(metrics)} ({metrics['n_test_clips']} test clips)")


def _scores(m: dict) -> str:
    return f"accuracy {m['accuracy']:.3f}, balanced {m['balanced_accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}"


def recipes() -> None:
    """List the recipes shipped with sonotype."""
    from rich.table import Table  # console output only


    t = Table("recipe", "corpus", "description")
    for r in list_recipes():
        t.add_row(r["name"], r["corpus"], r["description"])
    out.print(t)


def evaluate(
    model: Path = typer.Argument(..., help="Saved model directory."),
    corpus: str = typer.Option(..., "--corpus", help="Corpus loader name."),
    root: Path = typer.Option(..., "--root", help="Corpus root folder."),
    out_dir: Path = typer.Option(..., "--out", help="Directory for metrics.json and report.html."),
    overrides: list[str] = typer.Option(
        [], "--op", metavar="YAML", help="Label operation as YAML, e.g. '{keep: [happy, sad]}' (repeatable)."
    ),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Feature/embedding cache folder (default "
                                          "$SONOTYPE_CACHE or ~/.cache/sonotype)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics object on stdout."),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Evaluate a saved model on another corpus, on the labels both share (at least two).

    Works for every kind of model: frame features, frozen-backbone embeddings, fine-tuned
    backbones; a model trained with per-speaker normalisation is normalised with the new
    corpus's own speakers' statistics."""
    from sonotype.pipeline.config import CorpusConfig  # heavy (torch): lazy for a fast --help
    from sonotype.pipeline.evaluate import evaluate_on_corpus  # heavy (torch): lazy for a fast --help
    from sonotype.reporting import report as rpt  # heavy (torch): lazy for a fast --help

    ops = [_op(o) for o in overrides]
    cc = CorpusConfig(name=corpus, root=str(root), ops=ops)
    with atomic_dir(out_dir, force=force) as tmp:
        metrics = evaluate_on_corpus(model, cc, progress=not quiet,
                                     cache_dir=None if cache_dir is None else str(cache_dir))
        metrics["model"] = str(model)
        atomic_write_text(tmp / "metrics.json", json.dumps(metrics, indent=2))
        plots = rpt.write_plots(tmp, history=None, metrics=metrics, examples=[])
        rpt.write_report(tmp, config={"model": str(model), "corpus": corpus, "root": str(root), "ops": ops},
                         metrics=metrics, plots=plots, title=f"{Path(model).name} on {corpus}")
    if as_json:
        out.print_json(json.dumps(metrics))
        if quiet:
            return
    from rich.markup import escape  # console output only

    t, ch = metrics["trained_on"], metrics["chance"]
    dropped = metrics["labels_dropped_model"] + metrics["labels_dropped_corpus"]
    line = (
        f"{out_dir}: {t['model_id']} (trained on {t['corpus']}" + (f", run {t['recipe']}" if t.get("recipe") else "")
        + f") on {corpus}: labels kept {metrics['labels_kept']}, dropped {dropped}; {_scores(metrics)} "
        f"({metrics['n_test_clips']} clips); chance: balanced {ch['balanced_accuracy']:.3f}, accuracy {ch['accuracy']:.3f}"
    )
    console.print(f"[green]done[/] {escape(line)}", highlight=False)


def _op(text: str) -> dict:
    """One ``--op`` value: a YAML mapping with one key (a YAML mistake is one line, not a traceback)."""

    from sonotype.pipeline.config import yaml_problem  # heavy (torch): lazy for a fast --help

    try:
        op = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--op {text!r} is not valid YAML: {yaml_problem(exc)}") from None
    if not isinstance(op, dict) or len(op) != 1:
        raise ConfigError(f"--op {text!r}: expected one operation as a mapping, e.g. '{{keep: [happy, sad]}}'")
    return op


def _audio_files(inputs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                raise ParameterError(
                    f"{p}: no audio file in this folder (looked for {', '.join(sorted(AUDIO_EXTENSIONS))})"
                )
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise AudioError(p, "no such file or folder")
    return files


def predict(
    model: Path = typer.Argument(..., help="Saved model directory."),
    inputs: list[Path] = typer.Argument(..., help="Audio files or folders."),
    window: float | None = typer.Option(
        None, "--window", help="Segment length in seconds for the timeline. The file's label then is the mean "
        "over these segments, which can differ from the label without --window (the whole file at once)."
    ),
    hop: float | None = typer.Option(None, "--hop", help="Segment hop in seconds (default: window)."),
    smooth: int = typer.Option(1, "--smooth", help="Smooth segment probabilities over N segments (a centred "
                               "window, shrunk at the edges) before labelling segments and merging events."),
    smooth_kind: str = typer.Option("mean", "--smooth-kind", help="mean (moving average) | median (per class, "
                                    "renormalised)."),
    min_event: float = typer.Option(0.0, "--min-event", help="Events shorter than S seconds are merged into the "
                                    "neighbour their segments favour (not dropped: the timeline keeps no hole)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per file (a JSON list)."),
    csv_out: Path | None = typer.Option(None, "--csv", help="Write a CSV; --csv-rows says what a row is."),
    csv_rows: str = typer.Option("file", "--csv-rows", help="file (path, label, probabilities) | segments "
                                 "(path, start, end, label, probabilities) | events (path, start, end, label, "
                                 "probability)."),
    labels_out: Path | None = typer.Option(None, "--labels", help="Write the events as an Audacity label track "
                                           "(start<TAB>end<TAB>label); with several inputs, a folder of STEM.txt."),
    vtt_out: Path | None = typer.Option(None, "--vtt", help="Write the events as WebVTT cues; with several inputs, "
                                        "a folder of STEM.vtt."),
    plot: Path | None = typer.Option(None, "--plot", help="Folder for a plot per file: events over the waveform, "
                                     "the probability timeline and the mean probabilities."),
    runtime: str = typer.Option("torch", "--runtime", help="torch | onnx"),
    onnx_path: Path | None = typer.Option(None, "--onnx", help="ONNX file (default MODEL/model.onnx, exported if missing)."),
    backbone_dir: list[Path] = typer.Option([], "--backbone-dir", help="Folder to search for the model's backbone "
                                            "when it moved (found by its digest; repeatable; also $SONOTYPE_BACKBONES)."),
    batch_out: Path | None = typer.Option(None, "--out", help="Batch mode for big folders: append one CSV row per "
                                          "file (path, digest, model, duration, label, probabilities) as each "
                                          "finishes, fsynced, with a progress bar."),
    jobs: int = typer.Option(1, "--jobs", min=1, help="With --out: worker processes (one torch thread each)."),
    resume: bool = typer.Option(False, "--resume", help="With --out: continue an interrupted run, skipping files "
                                "whose path and content digest are already in the CSV."),
    same_speaker: bool = typer.Option(False, "--same-speaker", help="The files are one speaker's: a model trained "
                                      "with `normalize` standardises them by their own statistics (each classified whole)."),
    engine: str = typer.Option("local", "--engine", help="With --out: local (processes) | ray (a Ray cluster)."),
    address: str | None = typer.Option(None, "--address", help="With --engine ray: the cluster (default: a local one "
                                       "with --jobs CPUs)."),
) -> None:
    """Classify audio files with a saved model (MODEL is RUN_DIR/model, or hf://user/name[@revision]).

    Without --window a file is classified whole. With --window/--hop it is cut into segments,
    each classified, and the file's label and probabilities are the mean over the segments:
    the timeline and the file-level answer both depend on --window. A file is then read in
    blocks, so an hours-long recording is classified in bounded memory. Consecutive segments
    of one label form the events (JSON "events", --csv-rows events, --labels, --vtt).
    """
    from sonotype.backbones.folders import add_search_dirs  # heavy (torch): lazy for a fast --help

    add_search_dirs(backbone_dir)
    from sonotype.inference.hub import local_model  # heavy: loads torch; `sonotype --help` stays fast

    model = local_model(model)  # hf://user/name[@revision]: downloaded, commit pinned, digests checked


    _check_predict_options(runtime, csv_rows, smooth, smooth_kind, min_event)
    check_windows(Limits.from_env(), window=window, hop=hop)  # a 1e-9 hop or a 1e308 window: one line, exit 2
    if batch_out is None and (jobs != 1 or resume or engine != "local" or address):
        raise ParameterError("--jobs, --resume, --engine and --address belong to the batch mode: add --out results.csv")
    if batch_out is not None:
        if as_json or csv_out or labels_out or vtt_out or plot:
            raise ParameterError("--out (batch mode) writes one CSV row per file; it does not combine with "
                                 "--json, --csv, --labels, --vtt or --plot")
        _predict_batch(model, inputs, batch_out, jobs=jobs, resume=resume, runtime=runtime, onnx_path=onnx_path,
                       backbone_dirs=backbone_dir, engine=engine, address=address,
                       settings={"window": window, "hop": hop, "smooth": smooth, "smooth_kind": smooth_kind,
                                 "min_event": min_event})
        return
    clf = _load_for_predict(model, runtime, onnx_path)
    files = _audio_files(inputs)
    if same_speaker and (window is not None or smooth != 1 or min_event):
        raise ParameterError("--same-speaker classifies each file whole: leave out --window, --smooth and --min-event")
    results, errors = _predict_each(clf, files, same_speaker=same_speaker,
                                    settings={"window": window, "hop": hop, "smooth": smooth,
                                              "smooth_kind": smooth_kind, "min_event": min_event})
    if csv_out:
        atomic_write_text(csv_out, _prediction_csv(results, clf.labels, csv_rows))
    _write_event_files(results, labels_out, vtt_out, single=len(files) == 1)
    if plot:
        from sonotype.reporting.prediction import plot_prediction  # heavy (torch): lazy for a fast --help

        plot.mkdir(parents=True, exist_ok=True)
        for r in results:
            plot_prediction(r, plot / f"{Path(r.path).stem}.png")
    if as_json:
        out.print_json(json.dumps({"model": clf.model_id, "results": [r.to_dict() for r in results], "errors": errors}))
    else:
        _print_predictions(results, errors)
    if errors and not results:
        sys.exit(2)


def _check_predict_options(runtime: str, csv_rows: str, smooth: int, smooth_kind: str, min_event: float) -> None:
    """A bad ``predict`` setting fails before the model loads."""


    if runtime not in RUNTIMES:
        raise ParameterError(f"--runtime must be one of {RUNTIMES}, got {runtime!r}")
    if csv_rows not in CSV_ROWS:
        raise ParameterError(f"--csv-rows must be one of {CSV_ROWS}, got {csv_rows!r}")
    smooth_check(np.zeros((0, 1)), smooth, smooth_kind)  # type: ignore[arg-type]
    merge_events([], np.zeros((0, 1)), ["x"], min_event=min_event)


def _load_for_predict(model: Path, runtime: str, onnx_path: Path | None) -> Any:
    """The classifier of ``predict``: the torch model, or its ONNX graph (exported when missing)."""
    if runtime == "onnx":
        from sonotype.inference.export import (  # heavy (torch): lazy for a fast --help
            export_onnx,
            load_onnx_classifier,
        )  # heavy (torch): lazy for a fast --help

        onnx_file = onnx_path or model / "model.onnx"
        if not onnx_file.exists():
            export_onnx(model, onnx_file)
        return load_onnx_classifier(model, onnx_file)
    from sonotype.inference.predict import load_model  # heavy (torch): lazy for a fast --help

    return load_model(model)


def _predict_each(clf: Any, files: list[Path], *, same_speaker: bool, settings: dict) -> tuple[list, list[dict]]:
    """Each file's prediction, and the files that failed with a :class:`SonotypeError` (the run goes on)."""

    if same_speaker:
        if not hasattr(clf, "predict_group"):
            raise ParameterError("--same-speaker needs the torch runtime")
        return clf.predict_group(files), []
    norm = getattr(clf, "normalizer", None)
    if norm is not None and len(files) >= norm.min_clips:  # one clip alone cannot give statistics anyway
        console.print(f"[yellow]note[/] this model standardises each {norm.by}'s clips together; each file is "
                      f"classified alone here, with the training {norm.by}s' average statistics. If these files "
                      f"are one {norm.by}'s, --same-speaker standardises them together.", highlight=False)
    results, errors = [], []
    for f in files:
        try:
            results.append(clf.predict(f, **settings))
        except SonotypeError as exc:  # reported per file, the run goes on
            errors.append({"path": str(f), "error": str(exc)})
    return results, errors


def _write_event_files(results: list, labels_out: Path | None, vtt_out: Path | None, *, single: bool) -> None:
    """``--labels`` (Audacity) and ``--vtt`` (WebVTT) event files: one file, or a folder of one per input."""

    for dest, ext, fmt in ((labels_out, ".txt", audacity_labels), (vtt_out, ".vtt", webvtt)):
        if dest:
            for r, target in _per_file_outputs(results, dest, ext, single=single):
                atomic_write_text(target, fmt(r.events))


def _print_predictions(results: list, errors: list[dict]) -> None:
    """The table of ``predict`` without ``--json``, then the skipped files."""
    from rich.markup import escape  # console output only
    from rich.table import Table  # console output only

    t = Table("file", "label", "p", "segments", "events")
    for r in results:
        t.add_row(escape(str(r.path)), escape(r.label), f"{r.probabilities[r.label]:.3f}", str(len(r.segments)),
                  str(len(r.events)))
    out.print(t)
    for e in errors:
        console.print(f"[red]skipped[/] {escape(e['path'] + ': ' + e['error'])}", highlight=False)


def _predict_batch(model: Path, inputs: list[Path], out_csv: Path, *, jobs: int, resume: bool, runtime: str,
                   onnx_path: Path | None, backbone_dirs: list[Path], settings: dict, engine: str = "local",
                   address: str | None = None) -> None:
    """``predict --out``: :func:`sonotype.inference.batch.predict_files`, then a summary line."""
    from rich.markup import escape  # console output only

    from sonotype.inference.batch import predict_files  # heavy (torch): lazy for a fast --help

    source: object = model
    if runtime == "onnx":
        if jobs > 1 or engine != "local":
            raise ParameterError("--runtime onnx runs in one process: leave --jobs at 1 and --engine local")
        from sonotype.inference.export import (  # heavy (torch): lazy for a fast --help
            export_onnx,
            load_onnx_classifier,
        )  # heavy (torch): lazy for a fast --help

        onnx_file = onnx_path or model / "model.onnx"
        if not onnx_file.exists():
            export_onnx(model, onnx_file)
        source = load_onnx_classifier(model, onnx_file)
    _audio_files(inputs)  # a missing input or an empty folder fails before any work
    s = predict_files(source, inputs, out=out_csv, jobs=jobs, resume=resume, backbone_dirs=backbone_dirs,  # type: ignore[arg-type]
                      engine=engine, address=address, **settings)
    for note in s.repaired:
        console.print(f"[yellow]repaired[/] {escape(note)}", highlight=False)
    for path, err in s.errors:
        console.print(f"[red]skipped[/] {escape(path + ': ' + err)}", highlight=False)
    out.print(f"{s.out}: {s.written} file(s) written, {s.skipped} already there, {len(s.errors)} failed "
              f"(of {s.total})", highlight=False, soft_wrap=True)
    if s.errors and not (s.written or s.skipped):
        sys.exit(2)


CSV_ROWS = ("file", "segments", "events")


def _prediction_csv(results: list, labels: list[str], rows: str) -> str:
    """The --csv text: one row per file, per segment or per event."""

    buf = io.StringIO()
    w = csv.writer(buf)
    probs = [f"p_{lab}" for lab in labels]
    if rows == "file":
        w.writerow(["path", "label", *probs])
        for r in results:
            w.writerow([r.path, r.label, *[f"{r.probabilities[lab]:.6f}" for lab in labels]])
    elif rows == "segments":
        w.writerow(["path", "start", "end", "label", *probs])
        for r in results:
            for s in r.segments:
                w.writerow([r.path, f"{s.start:.6f}", f"{s.end:.6f}", s.label,
                            *[f"{s.probabilities[lab]:.6f}" for lab in labels]])
    else:
        w.writerow(["path", "start", "end", "label", "probability"])
        for r in results:
            for e in r.events:
                w.writerow([r.path, f"{e.start:.6f}", f"{e.end:.6f}", e.label, f"{e.probability:.6f}"])
    return buf.getvalue()


def _per_file_outputs(results: list, dest: Path, ext: str, *, single: bool) -> list[tuple]:
    """(result, path) pairs: ``dest`` itself for one input file, else ``dest/STEM.ext`` per file."""

    if single:
        return [(r, dest) for r in results]
    dest.mkdir(parents=True, exist_ok=True)
    seen: dict[str, str] = {}
    pairs = []
    for r in results:
        stem = Path(r.path).stem
        if stem in seen:
            raise ParameterError(f"{seen[stem]} and {r.path} would both write {dest / (stem + ext)}; "
                                 "predict them separately")
        seen[stem] = r.path
        pairs.append((r, dest / f"{stem}{ext}"))
    return pairs


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
    """Add the training and prediction commands to ``app``."""
    app.command()(train)
    app.command()(run)
    app.command()(recipes)
    app.command()(evaluate)
    app.command()(predict)
    app.command()(results)
    app.command()(demo)
