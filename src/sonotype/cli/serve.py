"""CLI commands: ``serve`` (HTTP service and web page), ``listen`` (live input) and ``export`` (ONNX)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import typer

from sonotype.cli._common import out
from sonotype.errors import ParameterError
from sonotype.utils.limits import Limits, describe


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("serve")(serve)
    app.command("listen")(listen)
    app.command("export")(export)



def _limit_pairs(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ParameterError(f"--limit takes NAME=VALUE, got {item!r}")
        pairs[name.strip().replace("-", "_")] = value.strip()
    return pairs


def serve(
    model: Path | None = typer.Argument(None, help="Saved model directory (from `sonotype train`) or "
                                        "hf://user/name[@revision]; optional with --tagger."),
    tagger: str | None = typer.Option(None, "--tagger", help="Also (or only) serve POST /v1/tag with this "
                                      "pretrained encoder's own classes, no training needed: efficientat-mn04 "
                                      "(527 AudioSet classes), musicnn-msd (50 MSD tags) or the folder of either."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; loopback unless you mean to expose it."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, min=1, help="Worker processes (each loads its own copy of the model)."),
    threads: int = typer.Option(0, min=0, help="Torch threads per worker; 0 = CPU cores / workers, at most 4."),
    max_upload_mb: float | None = typer.Option(None, help="Largest accepted upload, in MB (413 beyond; limit "
                                               "max_upload_mb)."),
    max_duration: float | None = typer.Option(None, help="Longest accepted audio, in seconds (413 beyond; limit "
                                              "max_duration_s)."),
    max_stream: float | None = typer.Option(None, help="Longest /v1/stream WebSocket stream, in seconds (closed "
                                            "1008 beyond; limit max_stream_s)."),
    max_stream_buffer: float | None = typer.Option(None, help="Most audio (s) a stream may have waiting for "
                                                   "classification (closed 1008 beyond; limit max_stream_buffer_s)."),
    limit: list[str] = typer.Option([], "--limit", help="NAME=VALUE, repeatable; also $SONOTYPE_LIMIT_<NAME>. "
                                    "Limits and defaults: " + describe() + "."),
    allow_host: list[str] = typer.Option([], "--allow-host", help="Host name this server answers besides the "
                                         "address served and localhost (repeatable; '*' = any: needed behind a "
                                         "proxy that passes its own Host). Others get 400."),
    allow_origin: list[str] = typer.Option([], "--allow-origin", help="Web origin (scheme://host[:port]) allowed "
                                           "to open /v1/stream besides the page's own (repeatable)."),
    token: str | None = typer.Option(None, "--token", envvar="SONOTYPE_TOKEN", help="Require 'Authorization: "
                                     "Bearer TOKEN' on every API route (for deployments beyond localhost)."),
    log_level: str = typer.Option("info", help="uvicorn log level: debug, info, warning, error."),
    backbone_dir: list[Path] = typer.Option([], "--backbone-dir", help="Folder to search for the model's backbone "
                                            "when it moved (found by its digest; repeatable; also $SONOTYPE_BACKBONES)."),
) -> None:
    """Serve MODEL over HTTP: POST /v1/classify, POST /v1/classify-group, GET /v1/model, GET /healthz,
    the WebSocket GET /v1/stream (live PCM in, one label per window out), a web page at / (upload or Listen);
    with --tagger ENCODER also (or only) POST /v1/tag and GET /v1/tagger.

    Every request has a budget (see --limit; the limits in force are shown at GET /v1/model);
    only the Host names of the address served answer (--allow-host), and a browser page of
    another origin cannot open the WebSocket (--allow-origin). See docs/serving.md.
    """

    from sonotype.backbones.folders import add_search_dirs  # heavy (torch): lazy for a fast --help

    add_search_dirs(backbone_dir)  # in the environment: worker processes inherit it
    from sonotype.inference.hub import local_model  # heavy (torch): lazy for a fast --help
    from sonotype.serve.app import create_app  # heavy (torch): lazy for a fast --help
    from sonotype.serve.security import default_hosts  # heavy (sonotype.serve loads the app): lazy
    from sonotype.serve.server import run  # heavy (uvicorn, the app): lazy for a fast --help

    if model is None and tagger is None:
        raise ParameterError("give MODEL (a saved model directory), --tagger ENCODER (e.g. efficientat-mn04), or both")
    if model is not None:
        model = local_model(model)  # hf://user/name[@revision]: downloaded once here, the workers read the folder
    if tagger is not None and Path(tagger).expanduser().is_dir():
        tagger = str(Path(tagger).expanduser().resolve())  # the workers may not share this working folder
    if not 0 < port < 65536:
        raise ParameterError(f"--port must be 1..65535, got {port}")
    if threads == 0:
        threads = max(1, min(4, (os.cpu_count() or 1) // workers))
    shortcuts = {"max_upload_mb": max_upload_mb, "max_duration_s": max_duration, "max_stream_s": max_stream,
                 "max_stream_buffer_s": max_stream_buffer}
    limits = Limits.from_env().replace(**{k: v for k, v in shortcuts.items() if v is not None},
                                       **_limit_pairs(limit))
    hosts = default_hosts(host, allow_host)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Load once here so a bad model directory fails now, as one clear line, not in every worker.
    app = create_app(model, tagger=tagger, limits=limits, torch_threads=threads, allow_hosts=hosts,
                     allow_origins=allow_origin, token=token)
    clf, tag = app.state.classifier, app.state.tagger
    what = [f"[bold]{clf.model_id}[/] ({len(clf.labels)} classes)"] if clf is not None else []
    what += [f"tagger [bold]{tag.name}[/] ({len(tag.labels)} labels, POST /v1/tag)"] if tag is not None else []
    out.print(f"serving {' and '.join(what)} on http://{host}:{port}/ - {workers} worker(s), {threads} torch "
              "thread(s) each", highlight=False, soft_wrap=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        out.print(f"[yellow]note:[/] bound to {host}: reachable from other machines"
                  + ("" if token else "; consider --token (docs/serving.md)"), highlight=False)
    if hosts is None:
        out.print("[yellow]note:[/] any Host header is answered; name the served names with --allow-host",
                  highlight=False)
    if workers == 1:
        run(app, host=host, port=port, limits=limits, log_level=log_level)
        return
    os.environ.update(
        SONOTYPE_SERVE_MODEL=str(Path(model).resolve()) if model is not None else "",
        SONOTYPE_SERVE_TAGGER=tagger or "",
        SONOTYPE_SERVE_TORCH_THREADS=str(threads),
        SONOTYPE_SERVE_ALLOW_HOSTS="*" if hosts is None else ",".join(hosts),
        SONOTYPE_SERVE_ALLOW_ORIGINS=",".join(allow_origin),
        **limits.to_env(),
    )
    if token:
        os.environ["SONOTYPE_TOKEN"] = token
    run("sonotype.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers, limits=limits,
        log_level=log_level)


def listen(
    model: Path = typer.Argument(..., help="Saved model directory."),
    input_file: Path | None = typer.Option(None, "--input", help="Play this audio file in real time instead of "
                                           "listening to a device (for trying a model, and for tests)."),
    speed: float = typer.Option(1.0, "--speed", help="With --input: play N times faster than real time."),
    window: float = typer.Option(1.0, "--window", help="Window length in seconds (as predict --window)."),
    hop: float | None = typer.Option(None, "--hop", help="Window step in seconds (default: window)."),
    events: Path | None = typer.Option(None, "--events", help="Append each event (consecutive windows of one "
                                       "label) to this file as it closes: an Audacity label track."),
    device: str | None = typer.Option(None, "--device", help="Input device, by number or by (part of its) name; "
                                      "default: the system's default input."),
    seconds: float | None = typer.Option(None, "--seconds", help="Stop a device after this many seconds "
                                         "(default: until Ctrl-C)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per window (JSON lines)."),
) -> None:
    """Label a microphone (sounddevice/PortAudio) or a file played in real time, window by window.

    The windows equal those of `predict --window W --hop H` on the same audio. Ctrl-C stops,
    flushing the last partial window and closing the last event.
    """

    from sonotype.inference.listen import device_source, file_source  # heavy (torch): lazy for a fast --help
    from sonotype.inference.listen import listen as run_listen  # heavy (torch): lazy for a fast --help
    from sonotype.inference.predict import load_model  # heavy (torch): lazy for a fast --help

    clf = load_model(model)
    if input_file is not None:
        source = file_source(input_file, speed=speed)
    else:
        dev: int | str | None = int(device) if device is not None and device.isdigit() else device
        source = device_source(dev, seconds=seconds)

    def show(seg) -> None:
        if as_json:
            typer.echo(json.dumps(seg.to_dict()))
        else:
            p = seg.probabilities[seg.label]
            typer.echo(f"{_clock(seg.start)}-{_clock(seg.end)}  {seg.label}  {p:.2f}")

    _segs, evs = run_listen(clf, source, window=window, hop=hop, on_segment=show, events_out=events)
    if not as_json and events is not None:
        out.print(f"{len(evs)} event(s) appended to {events}", highlight=False)


def _clock(t: float) -> str:
    m, s = divmod(t, 60.0)
    return f"{int(m)}:{s:04.1f}"


def export(
    model: Path = typer.Argument(..., help="Saved model directory."),
    onnx: Path = typer.Option(..., "--onnx", help="Output .onnx file (scaler and softmax folded in)."),
    opset: int = typer.Option(17, help="ONNX opset version."),
    check: bool = typer.Option(True, help="Compare onnxruntime with PyTorch on random inputs after writing."),
) -> None:
    """Export MODEL's network, with its feature scaler folded in, to ONNX for onnxruntime."""
    from sonotype.inference.export import export_onnx, verify_onnx  # heavy (torch): lazy for a fast --help

    path = export_onnx(model, onnx, opset=opset)
    out.print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)", highlight=False)
    if check:
        diff = verify_onnx(model, path)
        out.print(f"onnxruntime matches PyTorch: max |difference| = {diff:.2e}", highlight=False)
