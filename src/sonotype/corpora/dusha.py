"""Dusha: Russian speech emotion corpus (SberDevices, Kondratenko et al. 2022, arXiv:2212.12266).

About 300,000 clips (~350 h): a crowd-sourced part (read-aloud by 2,068 speakers, 16 kHz WAV)
and a podcast part (6,240 speakers; the audio itself is not distributed, only features and
markup). Four emotions, *positive sad angry neutral*, plus *other* as an annotator answer.
Licence: the SberDevices licence (https://github.com/salute-developers/golos/tree/master/license).
Home: https://github.com/salute-developers/golos/tree/master/dusha (crowd.tar 28 GB,
podcast.tar 360 MB).

Layout after unpacking ``crowd.tar`` and ``podcast.tar``::

    crowd_train/raw_crowd_train.jsonl    (or .tsv) one row per annotation
    crowd_train/wavs/<hash_id>.wav
    crowd_test/..., podcast_train/..., podcast_test/...
    processed_dataset_090/aggregated_dataset/crowd_train.jsonl   one row per clip (if the
                                         official processing script was run)

Raw rows carry ``hash_id, audio_path, duration, annotator_emo, annotator_id, golden_emo,
speaker_text, speaker_emo, source_id``; aggregated rows carry ``emotion`` instead of the
annotator columns. Aggregated manifests are preferred; otherwise each clip's label is the
majority of its annotators (ties are reported as skipped). Any manifest can also be given
explicitly (``manifests=[...]``, JSONL/TSV/CSV with an audio path, an emotion and a duration
column). Rows with missing values, unknown emotions or absent audio are reported and dropped
(the podcast part has no audio, so its rows are all reported). Group = ``source_id`` (the
speaker) when present, else the file.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sonotype.corpora.base import Clip, Manifest, Skipped, build_manifest, check_root, register
from sonotype.corpora.emotions import CODES
from sonotype.errors import CorpusError

__all__ = ["MANUAL", "PARTS", "prepare", "read_rows"]

NAME = "dusha"
PARTS = ("crowd_train", "crowd_test", "podcast_train", "podcast_test")
MANUAL = """\
Dusha is large (crowd.tar 28 GB) and served through short links that need a browser.
1. Download crowd.tar (and podcast.tar for the podcast markup) from
   https://github.com/salute-developers/golos/tree/master/dusha#downloads
2. Unpack them under {dest}: tar -xf crowd.tar -C {dest}  (gives {dest}/crowd_train/...)
3. Check with: sonotype corpus show dusha {dest}
"""
PATH_COLUMNS = ("audio_path", "wav_path", "path", "file")
EMOTION_COLUMNS = ("emotion", "annotator_emo", "label")
DURATION_COLUMNS = ("duration", "wav_length")
GROUP_COLUMNS = ("source_id", "speaker_id", "speaker")
_MISSING = {"", "nan", "none", "null", "na"}
_EXTRA = ("golden_emo", "speaker_text", "speaker_emo")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _MISSING)


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, row)`` from a JSONL, TSV or CSV manifest."""
    suffix = path.suffix.lower()
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            if suffix == ".jsonl":
                for i, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            row = json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise CorpusError(f"{path}:{i}: not a JSON object ({exc})") from None
                        if not isinstance(row, dict):
                            raise CorpusError(f"{path}:{i}: not a JSON object")
                        yield i, row
            elif suffix in (".tsv", ".csv"):
                reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
                for i, row in enumerate(reader, 2):
                    yield i, row
            else:
                raise CorpusError(f"{path}: manifest must be .jsonl, .tsv or .csv")
    except OSError as exc:
        raise CorpusError(f"cannot read manifest {path}: {exc}") from None


def _pick(row: dict[str, Any], columns: tuple[str, ...]) -> tuple[str | None, Any]:
    for c in columns:
        if c in row:
            return c, row[c]
    return None, None


def _find_manifests(root: Path) -> list[Path]:
    found: list[Path] = []
    processed = sorted(root.glob("processed_dataset_*/aggregated_dataset"))
    for part in PARTS:
        cands = [d / f"{part}{ext}" for d in processed for ext in (".jsonl", ".tsv")]
        cands += [root / part / f"raw_{part}{ext}" for ext in (".jsonl", ".tsv")]
        hit = next((c for c in cands if c.is_file()), None)
        if hit is not None:
            found.append(hit)
    return found


def _part_of(path: Path) -> tuple[str | None, str | None]:
    name = path.stem.lower()
    part = next((p for p in ("crowd", "podcast") if p in name), None)
    split = next((s for s in ("train", "test") if s in name), None)
    return part, split


def _resolve(audio: str, manifest: Path, root: Path) -> Path | None:
    rel = Path(audio)
    if rel.is_absolute():
        return rel if rel.is_file() else None
    part_dir = root / manifest.stem.removeprefix("raw_")
    for base in (manifest.parent, part_dir, root):
        cand = base / rel
        if cand.is_file():
            return cand.resolve()
    return None


def _load_manifest(path: Path, root: Path, skipped: list[Skipped]) -> list[dict[str, Any]]:
    """Rows of one manifest, checked; raw annotations reduced to one majority label per clip."""
    codes = CODES[NAME]
    part, split = _part_of(path)
    rows: dict[str, dict[str, Any]] = {}
    votes: dict[str, Counter[str]] = {}
    for i, row in read_rows(path):
        where = f"{path}:{i}"
        pcol, audio = _pick(row, PATH_COLUMNS)
        ecol, emo = _pick(row, EMOTION_COLUMNS)
        dcol, dur = _pick(row, DURATION_COLUMNS)
        missing = [
            name
            for name, col, val in (
                ("audio path", pcol, audio),
                ("emotion", ecol, emo),
                ("duration", dcol, dur),
            )
            if col is None or _missing(val)
        ]
        if missing:
            skipped.append(Skipped(where, f"row with missing value(s): {', '.join(missing)}"))
            continue
        emo = str(emo).strip().lower()
        if emo not in codes:
            skipped.append(Skipped(where, f"unknown emotion {emo!r} (known: {', '.join(codes)})"))
            continue
        try:
            duration = float(dur)
        except (TypeError, ValueError):
            skipped.append(Skipped(where, f"duration {dur!r} is not a number"))
            continue
        key = str(row.get("hash_id") or audio)
        if key not in rows:
            gcol, gval = _pick(row, GROUP_COLUMNS)
            rows[key] = {
                "where": where,
                "audio": str(audio),
                "duration": duration,
                "group": None if gcol is None or _missing(gval) else str(gval),
                "meta": {k: row[k] for k in _EXTRA if k in row and not _missing(row[k])},
                "raw": ecol == "annotator_emo",
            }
            votes[key] = Counter()
        elif ecol != "annotator_emo":
            skipped.append(Skipped(where, f"duplicate row for {key} (first at {rows[key]['where']})"))
            continue
        votes[key][emo] += 1
    out = []
    for key, info in rows.items():
        ranked = votes[key].most_common()
        if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
            skipped.append(Skipped(info["where"], f"annotators disagree with no majority: {dict(ranked)}"))
            continue
        info.update(key=key, emotion=ranked[0][0], part=part, split=split, manifest=path)
        if info["raw"]:
            n = sum(votes[key].values())
            info["meta"].update(n_votes=n, agreement=round(ranked[0][1] / n, 4))
        out.append(info)
    return out


@register(NAME, group="speaker")
def prepare(root: Path, *, manifests: list[str | Path] | str | Path | None = None) -> Manifest:
    """Build the Dusha manifest from its markup files (found under ``root`` or given)."""
    root = check_root(root)
    if manifests is None:
        paths = _find_manifests(root)
        if not paths:
            raise CorpusError(
                f"dusha: no manifest found under {root} (expected crowd_train/raw_crowd_train.jsonl or .tsv, "
                "or processed_dataset_*/aggregated_dataset/crowd_train.jsonl); pass manifests=[...]"
            )
    else:
        given = [manifests] if isinstance(manifests, str | Path) else list(manifests)
        paths = [p if Path(p).is_absolute() else root / p for p in map(Path, given)]
        for p in paths:
            if not p.is_file():
                raise CorpusError(f"dusha: manifest not found: {p}")
    codes = CODES[NAME]
    skipped: list[Skipped] = []
    clips: list[Clip] = []
    seen: dict[str, str] = {}
    for path in paths:
        for info in _load_manifest(path, root, skipped):
            audio = _resolve(info["audio"], path, root)
            if audio is None:
                skipped.append(Skipped(info["where"], f"audio file not found: {info['audio']}"))
                continue
            if str(audio) in seen:
                skipped.append(Skipped(info["where"], f"duplicate of {seen[str(audio)]}"))
                continue
            seen[str(audio)] = info["where"]
            meta = {
                "code": info["emotion"],
                "hash_id": info["key"],
                "duration": info["duration"],
                "part": info["part"],
                "split": info["split"],
                "manifest": str(info["manifest"]),
                **info["meta"],
            }
            group = info["group"] or str(audio)
            clips.append(Clip(str(audio), codes[info["emotion"]], group, NAME, meta=meta))
    return build_manifest(NAME, root, clips, skipped, layout="crowd_train/raw_crowd_train.jsonl + wavs/", example="crowd_train/wavs/<hash>.wav")
