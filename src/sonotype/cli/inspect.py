"""CLI commands: ``sonotype info FILE`` and ``sonotype plot FILE`` - look at one recording."""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import Path

import typer

from sonotype.reporting.plots import KINDS

PlotKind = Enum("PlotKind", {k: k for k in (*KINDS, "all")}, type=str)  # type: ignore[misc]


def _dbfs(value: float) -> float | None:
    """Level in dB relative to full scale; ``None`` for digital silence (minus infinity)."""
    return round(20.0 * math.log10(value), 2) if value > 0 else None


def audio_facts(path: Path) -> dict[str, object]:
    """Header facts plus peak and RMS level (dBFS) over all channels of ``path``."""
    import numpy as np

    from sonotype import audio

    inf = audio.info(path)
    y, _ = audio.load(path, mono=False)
    peak = float(np.max(np.abs(y)))
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
    facts: dict[str, object] = inf.to_dict()
    facts["duration"] = round(inf.duration, 6)
    facts.update(peak_dbfs=_dbfs(peak), rms_dbfs=_dbfs(rms), silent=peak == 0.0)
    return facts


def info(
    file: Path = typer.Argument(..., help="Audio file (any format libsndfile reads, detected by content)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Print the audio facts: sample rate, channels, frames, duration, format, peak and RMS level."""
    from rich.table import Table

    from sonotype.cli._common import out

    facts = audio_facts(file)
    if as_json:
        typer.echo(json.dumps(facts))
        return
    table = Table(show_header=False)
    table.add_column("fact", style="bold")
    table.add_column("value")
    frames, sr = int(facts["frames"]), int(facts["samplerate"])  # type: ignore[call-overload]
    rows = [
        ("file", str(file)),
        ("format", f"{facts['format']} / {facts['subtype']}"),
        ("sample rate", f"{sr} Hz"),
        ("channels", str(facts["channels"])),
        ("frames", f"{frames:,}"),
        ("duration", f"{frames / sr:.3f} s"),
        ("peak level", "silence" if facts["peak_dbfs"] is None else f"{facts['peak_dbfs']:.2f} dBFS"),
        ("RMS level", "silence" if facts["rms_dbfs"] is None else f"{facts['rms_dbfs']:.2f} dBFS"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    out.print(table)


def plot(
    file: Path = typer.Argument(..., help="Audio file to draw."),
    kind: PlotKind = typer.Option(PlotKind.all, "--kind", "-k", help="Picture to draw."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Picture file (.png/.svg/.pdf); default FILE_STEM.KIND.png here."
    ),
    sr: int | None = typer.Option(
        None, "--sr", help="Resample to this rate first (default: the file's own)."
    ),
    n_fft: int = typer.Option(2048, "--n-fft", help="STFT window length in samples."),
    hop_length: int = typer.Option(512, "--hop-length", help="STFT hop in samples."),
) -> None:
    """Draw the waveform, a spectrogram or a feature with labelled axes and dB colour bars."""
    from sonotype.cli._common import out
    from sonotype.reporting.plots import plot_audio

    target = output or Path(f"{file.stem}.{kind.value}.png")
    written = plot_audio(file, sr=sr, kind=kind.value, out=target, n_fft=n_fft, hop_length=hop_length)
    out.print(f"wrote {written}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``info`` and ``plot`` to `app`."""
    app.command("info")(info)
    app.command("plot")(plot)
