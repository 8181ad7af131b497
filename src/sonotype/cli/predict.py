"""CLI: predict (files, folders, batches) and evaluate (a saved model on another corpus)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
import yaml

from sonotype.cli._common import QUIET_HELP, console, out, scores
from sonotype.errors import ConfigError, ParameterError
from sonotype.utils.io import atomic_dir, atomic_write_text, check_output_file, write_output_text
from sonotype.utils.limits import Limits, check_windows


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
    from sonotype.inference import outputs  # heavy (torch): lazy for a fast --help
    from sonotype.inference.hub import local_model  # heavy (torch): lazy for a fast --help

    add_search_dirs(backbone_dir)
    model = local_model(model)  # hf://user/name[@revision]: downloaded, commit pinned, digests checked
    outputs.check_predict_settings(runtime, csv_rows, smooth, smooth_kind, min_event)
    check_windows(Limits.from_env(), window=window, hop=hop)  # a 1e-9 hop or a 1e308 window: one line, exit 2
    if csv_out:
        check_output_file(csv_out)  # a folder or an unwritable place: one line before any work
    settings = {"window": window, "hop": hop, "smooth": smooth, "smooth_kind": smooth_kind, "min_event": min_event}
    if batch_out is None and (jobs != 1 or resume or engine != "local" or address):
        raise ParameterError("--jobs, --resume, --engine and --address belong to the batch mode: add --out results.csv")
    if batch_out is not None:
        if as_json or csv_out or labels_out or vtt_out or plot:
            raise ParameterError("--out (batch mode) writes one CSV row per file; it does not combine with "
                                 "--json, --csv, --labels, --vtt or --plot")
        _predict_batch(model, inputs, batch_out, jobs=jobs, resume=resume, runtime=runtime, onnx_path=onnx_path,
                       backbone_dirs=backbone_dir, engine=engine, address=address, settings=settings)
        return
    clf = outputs.load_for_predict(model, runtime, onnx_path)
    files = outputs.audio_files(inputs)
    note = None if same_speaker else outputs.speaker_note(clf, len(files))
    if note:
        console.print(f"[yellow]note[/] {note}", highlight=False)
    results, errors = outputs.predict_paths(clf, files, same_speaker=same_speaker, **settings)
    if csv_out:
        write_output_text(csv_out, outputs.prediction_csv(results, clf, csv_rows))
    outputs.write_event_files(results, labels_out, vtt_out, single=len(files) == 1)
    if plot:
        from sonotype.reporting.prediction import plot_prediction  # heavy (matplotlib): only for --plot

        plot.mkdir(parents=True, exist_ok=True)
        for r in results:
            plot_prediction(r, plot / f"{Path(r.path).stem}.png")
    if as_json:
        out.print_json(json.dumps({"model": clf.model_id, "results": [r.to_dict() for r in results], "errors": errors}))
    else:
        _print_predictions(results, errors)
    if errors and not results:
        sys.exit(2)


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

    from sonotype.inference import outputs  # heavy (torch): lazy for a fast --help
    from sonotype.inference.batch import predict_files  # heavy (torch): lazy for a fast --help

    source: object = model
    if runtime == "onnx":
        if jobs > 1 or engine != "local":
            raise ParameterError("--runtime onnx runs in one process: leave --jobs at 1 and --engine local")
        source = outputs.load_for_predict(model, runtime, onnx_path)
    outputs.audio_files(inputs)  # a missing input or an empty folder fails before any work
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
        + f") on {corpus}: labels kept {metrics['labels_kept']}, dropped {dropped}; {scores(metrics)} "
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


def register(app: typer.Typer) -> None:
    """Add the prediction commands to ``app``."""
    app.command()(evaluate)
    app.command()(predict)
