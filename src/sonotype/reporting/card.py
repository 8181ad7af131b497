"""Model cards: the ``README.md`` of a saved model folder, in the Hugging Face model-card format.

Written from records only, never by hand: ``model.json`` (labels, architecture, encoder,
licences, the speaker step), and for a model of ``sonotype train`` the run's ``metrics.json``
(figures, bootstrap intervals, baseline, confusion matrix, clip counts) and ``config.yaml``.
The YAML front matter carries ``library_name: sonotype``, ``license`` (the combined licence of
:mod:`sonotype.utils.licences`), ``tags``, ``datasets``, ``metrics`` and a ``model-index`` with the
values and the protocol; the prose and tables follow.

:func:`sonotype.inference.modelio.save_model` writes a first card from ``model.json``;
:func:`write_run_card` rewrites it once the run's ``metrics.json`` exists.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from sonotype.utils.io import atomic_write_text
from sonotype.utils.licences import Combined

__all__ = ["CARD_FILE", "front_matter", "render_card", "write_card", "write_run_card"]

CARD_FILE = "README.md"
_MODEL_JSON = "model.json"  # sonotype.inference.modelio.MODEL_JSON (modelio writes cards, so card does not import it)
_FIGURES = (("balanced_accuracy", "Balanced accuracy", "balanced_accuracy"), ("accuracy", "Accuracy", "accuracy"),
            ("macro_f1", "Macro-F1", "f1"))


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "-"


def _cell(x: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(x).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _licences(meta: dict[str, Any]) -> Combined | None:
    rec = meta.get("licences")
    return Combined.from_dict(rec) if rec else None


def _datasets(meta: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    lic = _licences(meta)
    names = [name for role, name, _ in (lic.inputs if lic else ()) if role == "data" and name != "unknown data"]
    if not names and metrics.get("corpus"):
        names = [str(metrics["corpus"])]
    return names


def _name(meta: dict[str, Any], name: str | None) -> str:
    return name or (meta.get("extra") or {}).get("recipe") or "sonotype model"


def front_matter(meta: dict[str, Any], metrics: dict[str, Any] | None = None, *, name: str | None = None) -> dict[str, Any]:
    """The card's YAML header as a dict: library, licence, tags, datasets, metrics and model-index.

    Parameters
    ----------
    meta : dict
        The model's ``model.json``.
    metrics : dict, optional
        The run's ``metrics.json`` (default: the headline copy in ``model.json``).
    name : str, optional
        The model's name in ``model-index``.
    """
    m = metrics if metrics is not None else (meta.get("metrics") or {})
    lic = _licences(meta)
    fm: dict[str, Any] = {"library_name": "sonotype", "pipeline_tag": "audio-classification",
                          "license": lic.license if lic else "other"}
    if lic and lic.license == "other":
        fm["license_name"] = lic.license_name or "unknown"
        if lic.license_link:
            fm["license_link"] = lic.license_link
    datasets = _datasets(meta, m)
    tags = ["sonotype", "audio", "audio-classification"]
    if meta.get("backbone"):
        tags.append("pretrained-encoder")
    fm.update(tags=tags, datasets=datasets)
    present = [(k, title, typ) for k, title, typ in _FIGURES if isinstance(m.get(k), (int, float))]
    if present:
        fm["metrics"] = [typ for _, _, typ in present]
        dataset = {"name": ", ".join(datasets) or "unknown", "type": "+".join(d.lower() for d in datasets) or "unknown",
                   "args": {"protocol": str(m.get("protocol") or (meta.get("extra") or {}).get("protocol") or "")}}
        fm["model-index"] = [{"name": _name(meta, name), "results": [{
            "task": {"type": "audio-classification", "name": "Audio classification"},
            "dataset": dataset,
            "metrics": [{"type": typ, "name": title, "value": round(float(m[k]), 4),
                         **({"args": {"average": "macro"}} if k == "macro_f1" else {})} for k, title, typ in present],
        }]}]
    return fm


def _figures(m: dict[str, Any]) -> str:
    ci = m.get("bootstrap_ci") or {}
    base = m.get("baseline") or {}
    level = int(round(100 * float(ci.get("level", 0.95))))
    rows = []
    for k, title, _ in _FIGURES:
        if k not in m:
            continue
        iv = ci.get(k)
        rows.append([title, _fmt(m[k]), f"{_fmt(iv[0])} - {_fmt(iv[1])}" if iv else "-", _fmt(base.get(k))])
    head = ["metric", "model", f"{level}% bootstrap interval", "baseline (same folds)"]
    text = _table(head, rows)
    if base.get("verdict"):
        text += f"\n\nBaseline: {base.get('config', {}).get('description', 'the textbook baseline')}. {base['verdict']}"
    elif not base:
        text += "\n\nNo baseline was run (`evaluate.baseline: false`)."
    return text


def _confusion(m: dict[str, Any], labels: list[str]) -> str:
    conf = m.get("confusion")
    if not conf:
        return ""
    rows = [[f"**{lab}**", *row] for lab, row in zip(labels, conf)]
    return ("## Confusion matrix\n\nTest clips pooled over the folds; rows: true label, columns: predicted.\n\n"
            + _table(["true \\ predicted", *labels], rows))


def _data(meta: dict[str, Any], m: dict[str, Any]) -> str:
    lic = _licences(meta)
    counts = {str(c.get("name")): c.get("n_clips") for c in (m.get("corpora") or []) if isinstance(c, dict)}
    rows = []
    for role, name, licence in (lic.inputs if lic else ()):
        if role == "data":
            n = counts.get(name, counts.get(name.lower(), m.get("n_clips") if len(counts) == 0 else None))
            rows.append([name, n if n is not None else "-", f"[{licence.title}]({licence.url})" if licence.url
                         else licence.title])
    text = _table(["corpus", "clips", "licence"], rows) if rows else "The training data is not recorded."
    trained = (meta.get("extra") or {}).get("trained_on") or (m.get("final_model") or {}).get("text")
    if trained:
        text += f"\n\nThe saved model: {trained}."
    return text


def _encoder(meta: dict[str, Any]) -> str:
    lic = _licences(meta)
    bb = meta.get("backbone")
    digest = (meta.get("files") or {}).get("weights.safetensors", "")
    lines = [f"Classifier: `{meta['architecture']['name']}` on input shape {meta['architecture']['input_shape']}; "
             f"weights digest `{digest}`."]
    if bb:
        conf, ident = bb.get("config", {}), bb.get("identity", {})
        enc = [x for x in (lic.inputs if lic else ()) if x[0] == "encoder"]
        title = f"[{enc[0][2].title}]({enc[0][2].url})" if enc and enc[0][2].url else (enc[0][2].title if enc else "-")
        lines.append("\n" + _table(["encoder", "revision", "encoder digest", "layers", "pooling", "licence"], [[
            conf.get("model") or ident.get("model"), ident.get("revision") or "-", ident.get("weights_digest") or "-",
            conf.get("layer", "-"), conf.get("pooling", "-"), title]]))
        lines.append("\nThe encoder is not in this folder: at prediction time sonotype finds it by this digest "
                     "(`sonotype backbone fetch NAME`, `--backbone-dir`), and refuses another.")
    elif meta.get("features"):
        f = meta["features"]
        lines.append(f"Frame features computed by sonotype, no pretrained encoder: {', '.join(f.get('features', []))} "
                     f"at {f.get('sr')} Hz, representation `{(meta.get('representation') or {}).get('kind')}`.")
    return "\n".join(lines)


def _speaker_step(meta: dict[str, Any]) -> str:
    norm = (meta.get("extra") or {}).get("normalize")
    if not norm:
        return ""
    by = norm.get("by", "speaker")
    return (f"## {by.capitalize()} step\n\nEach {by}'s clips are standardised with that {by}'s own statistics "
            f"(no label used; at least {norm.get('min_clips', 2)} clips). At prediction time give several clips of "
            f"one {by} together: `sonotype predict --same-speaker`, `Classifier.predict_group`, "
            f"`POST /v1/classify-group`. A clip alone is standardised with the training {by}s' average statistics, "
            "which is less accurate.")


def _usage(ref: str) -> str:
    return f"""## How to use

Command line:

```bash
pip install sonotype
sonotype predict {ref} clip.wav
```

Python:

```python
import sonotype

clf = sonotype.load_model("{ref}")
print(clf.predict("clip.wav").label)
```

REST:

```bash
sonotype serve {ref} --port 8000
curl -F file=@clip.wav http://127.0.0.1:8000/v1/classify
```

Only `model.json` and safetensors files are read: loading never runs code from the download."""


def _limits(meta: dict[str, Any], m: dict[str, Any]) -> str:
    labels = meta["labels"]
    items = [f"Every input gets one of the {len(labels)} labels above: there is no 'none of these' answer."]
    trained = (m.get("final_model") or {}).get("text") or (meta.get("extra") or {}).get("trained_on")
    if trained:
        items.append(f"The figures hold for audio like the training data ({trained}); other speakers, languages, "
                     "recording conditions or sound sources are likely to score lower.")
    for cross in m.get("cross") or []:
        if isinstance(cross, dict) and "balanced_accuracy" in cross:
            items.append(f"On another corpus ({cross.get('corpus', '?')}): balanced accuracy "
                         f"{_fmt(cross['balanced_accuracy'])}.")
    if m.get("n_skipped"):
        items.append(f"{m['n_skipped']} clip(s) could not be read at training time and were skipped.")
    lic = _licences(meta)
    if lic:
        items.append(f"Licence: {lic.effect}")
    return "## Known limits\n\n" + "\n".join(f"- {x}" for x in items)


def render_card(meta: dict[str, Any], *, metrics: dict[str, Any] | None = None, name: str | None = None,
                ref: str | None = None) -> str:
    """The whole ``README.md``: YAML front matter, then prose and tables.

    Parameters
    ----------
    meta : dict
        The model's validated ``model.json``.
    metrics : dict, optional
        The run's ``metrics.json``; default the headline copy in ``model.json``.
    name : str, optional
        The model's name (default: its recipe).
    ref : str, optional
        How users load it, e.g. ``hf://user/name`` (default ``MODEL_DIR``).

    Returns
    -------
    str
    """
    m = metrics if metrics is not None else (meta.get("metrics") or {})
    lic = _licences(meta)
    title = _name(meta, name)
    labels = meta["labels"]
    head = yaml.safe_dump(front_matter(meta, metrics, name=name), sort_keys=False, allow_unicode=True)
    protocol = m.get("protocol") or (meta.get("extra") or {}).get("protocol")
    parts = [
        f"---\n{head}---",
        f"# {title}",
        f"A [sonotype](https://pypi.org/project/sonotype/) audio classifier with {len(labels)} labels: "
        + ", ".join(f"`{lab}`" for lab in labels) + ".",
        f"**Licence:** {lic.effect if lic else 'not recorded (a model saved before format 2).'}",
        "## Training data\n\n" + _data(meta, m),
        "## Evaluation\n\n" + (f"Protocol: {protocol}.\n\n" if protocol else "") + (
            _figures(m) if any(k in m for k, _, _ in _FIGURES) else "No evaluation is recorded with this model."),
        _confusion(m, labels),
        "## Model\n\n" + _encoder(meta),
        _speaker_step(meta),
        _licence_table(lic),
        _usage(ref or "MODEL_DIR"),
        _limits(meta, m),
        f"Written by sonotype {meta.get('sonotype_version', '?')} from the model's records "
        f"(model format {meta.get('format_version')}, created {meta.get('created', '?')}).",
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def _licence_table(lic: Combined | None) -> str:
    if lic is None:
        return ""
    rows = [[role, name, f"[{x.title}]({x.url})" if x.url else x.title, x.id if x.spdx else "-"]
            for role, name, x in lic.inputs]
    return (f"## Licences\n\nThis model carries `{lic.license}`"
            + (f" ({lic.license_name})" if lic.license_name else "") + f": {lic.effect}\n\n"
            + _table(["input", "name", "licence", "SPDX"], rows)
            + "\n\nA summary, not legal advice: the linked terms decide.")


def write_card(model_dir: str | Path, meta: dict[str, Any], *, metrics: dict[str, Any] | None = None,
               name: str | None = None, ref: str | None = None) -> Path:
    """Write ``model_dir/README.md`` (atomically) from ``meta`` and, when given, the run's ``metrics``.

    Returns
    -------
    Path
        The card file.
    """
    dest = Path(model_dir) / CARD_FILE
    atomic_write_text(dest, render_card(meta, metrics=metrics, name=name, ref=ref))
    return dest


def write_run_card(run_dir: str | Path, *, name: str | None = None) -> Path:
    """Rewrite ``run_dir/model/README.md`` from the run's ``model.json`` and ``metrics.json``.

    Examples
    --------
    >>> write_run_card("no/such/run")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...
    """
    run = Path(run_dir)
    meta = json.loads((run / "model" / _MODEL_JSON).read_text(encoding="utf-8"))
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    return write_card(run / "model", meta, metrics=metrics, name=name or run.name)
