"""Gather ``metrics.json`` files of many runs into one table (Markdown or CSV).

The table is how the README and the closing notes report results: one row per run with its
corpus, recipe, protocol and clip-level headline figures (mean +- std over folds when the run
had folds).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from sonotype.errors import ParameterError

__all__ = ["collect_results", "results_table"]

_FIGURES = (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"), ("macro_f1", "macro-F1"))


def collect_results(paths: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """Read every ``metrics.json`` at or under ``paths`` (files or run directories).

    Returns one dict per file (its JSON keys plus ``run_dir``), sorted by corpus, recipe and
    run directory. A file that is not valid JSON raises :class:`ParameterError` naming it.

    Parameters
    ----------
    paths : iterable of path-like
        ``metrics.json`` files, or folders searched recursively for them.

    Returns
    -------
    list of dict

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> run = Path(tempfile.mkdtemp()) / "run1"
    >>> run.mkdir()
    >>> _ = (run / "metrics.json").write_text(json.dumps({"corpus": "demo", "balanced_accuracy": 0.9}))
    >>> [r["balanced_accuracy"] for r in collect_results([run.parent])]
    [0.9]
    """
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(p.rglob("metrics.json")))
        else:
            raise ParameterError(f"results path {p} does not exist")
    rows = []
    for f in dict.fromkeys(x.resolve() for x in found):  # de-duplicate, keep order
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ParameterError(f"{f}: not a readable metrics.json ({exc})") from None
        if not isinstance(data, dict):
            raise ParameterError(f"{f}: metrics.json must hold a JSON object, got {type(data).__name__}")
        rows.append({**data, "run_dir": str(f.parent)})
    rows.sort(key=lambda r: (str(r.get("corpus", "")), str(r.get("recipe", "")), r["run_dir"]))
    return rows


def _protocol(row: dict[str, Any]) -> str:
    return str(row.get("protocol_name") or row.get("protocol") or "")


def _recipe(row: dict[str, Any]) -> str:
    return str(row.get("recipe") or Path(row.get("run_dir", "")).name)


def _backbone(row: dict[str, Any]) -> str:
    """``whisper-base@d135fcc7 all/meanstd`` for a backbone run (name, digest, layers/pooling); else empty."""
    b = row.get("backbone")
    if not isinstance(b, dict):
        return ""
    model = str(b.get("model") or "")
    name = Path(model).name or model
    digest = f"@{str(b['digest'])[:8]}" if b.get("digest") else ""
    return f"{name}{digest} {b.get('layers')}/{b.get('pooling')}"


def _fmt(x: Any) -> str:
    return "" if x is None else f"{float(x):.3f}"


def _seconds(x: Any) -> str:
    if x is None:
        return ""
    s = float(x)
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def _baseline(row: dict[str, Any]) -> dict[str, Any]:
    b = row.get("baseline")
    return b if isinstance(b, dict) and "skipped" not in b else {}


# How the model compares with its baseline (paired bootstrap of balanced accuracy, sonotype.pipeline.baseline).
_VERDICT_MARK = {"better": "beaten", "worse": "model worse", "not distinguishable": "not beaten"}


def _baseline_cell(row: dict[str, Any]) -> str:
    """The baseline's balanced accuracy and whether the model beats it beyond the bootstrap interval."""
    b = _baseline(row)
    if "balanced_accuracy" not in b:
        return ""
    verdict = (b.get("comparison") or {}).get("verdict")
    return _fmt(b["balanced_accuracy"]) + (f" ({_VERDICT_MARK[verdict]})" if verdict in _VERDICT_MARK else "")


def results_table(rows: Sequence[dict[str, Any]], fmt: Literal["markdown", "csv"] = "markdown") -> str:
    """One line per run: corpus, recipe, protocol, backbone (Markdown: only when a run has
    one), clip-level accuracy, balanced accuracy, macro-F1 (``mean +- std`` over folds where
    present), the baseline's balanced accuracy (with "beaten" when the model beats it beyond
    the paired bootstrap interval), test clips, training time.

    Markdown is for people (the pooled figure, then the fold mean +- std in brackets); CSV
    has one column per number (``*_mean``/``*_std`` empty without folds).

    Parameters
    ----------
    rows : sequence of dict
        From :func:`collect_results`.
    fmt : {"markdown", "csv"}

    Returns
    -------
    str

    Examples
    --------
    >>> rows = [{"corpus": "demo", "run_dir": "runs/a", "accuracy": 0.9, "balanced_accuracy": 0.88, "macro_f1": 0.87}]
    >>> results_table(rows, "csv").splitlines()[0].split(",")[:4]
    ['corpus', 'recipe', 'protocol', 'backbone']
    """
    if fmt not in ("markdown", "csv"):
        raise ParameterError(f"fmt must be 'markdown' or 'csv', got {fmt!r}")
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        head = ["corpus", "recipe", "protocol", "backbone"]
        for key, _ in _FIGURES:
            head += [key, f"{key}_mean", f"{key}_std"]
        w.writerow([*head, "baseline_balanced_accuracy", "baseline_verdict", "n_test_clips", "train_seconds", "run_dir"])
        for r in rows:
            mean, std = r.get("mean") or {}, r.get("std") or {}
            line = [r.get("corpus", ""), _recipe(r), _protocol(r), _backbone(r)]
            for key, _ in _FIGURES:
                line += [_fmt(r.get(key)), _fmt(mean.get(key)), _fmt(std.get(key))]
            base = _baseline(r)
            line += [_fmt(base.get("balanced_accuracy")), (base.get("comparison") or {}).get("verdict", "")]
            w.writerow([*line, r.get("n_test_clips", ""), "" if r.get("train_seconds") is None
                        else f"{float(r['train_seconds']):.1f}", r.get("run_dir", "")])
        return buf.getvalue()

    with_bb = any(_backbone(r) for r in rows)  # the column only when some run used a pretrained encoder
    lead = ["corpus", "recipe", "protocol", *(["backbone"] if with_bb else [])]
    head = [*lead, *(name for _, name in _FIGURES), "baseline", "test clips", "training time"]

    def cell(s: Any) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] * len(lead) + ["---:"] * (len(head) - len(lead))) + "|"]
    for r in rows:
        mean, std = r.get("mean") or {}, r.get("std") or {}
        figs = []
        for key, _ in _FIGURES:
            txt = _fmt(r.get(key))
            if key in mean:
                txt += f" ({_fmt(mean[key])} ± {_fmt(std.get(key, 0.0))})"
            figs.append(txt)
        vals = [r.get("corpus", ""), _recipe(r), _protocol(r), *([_backbone(r)] if with_bb else []), *figs,
                _baseline_cell(r), r.get("n_test_clips", ""),
                _seconds(r.get("train_seconds"))]
        lines.append("| " + " | ".join(cell(v) for v in vals) + " |")
    return "\n".join(lines) + "\n"
