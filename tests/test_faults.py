"""Issue 23, rows 6, 7, 8, 10, 12 and evaluate's label case: faults are one line or a reported skip.

Each test names the row of the issue's table it guards. Read-only folders are made with
``chmod 0o500``; as root (where chmod does not stop writes) the same refusal is simulated by
making ``os.mkdir``/``os.open`` raise ``EROFS`` under that folder.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.torch import save
from typer.testing import CliRunner

import sonotype
from conftest import write_wav
from sonotype import audio
from sonotype.cli import app, main
from sonotype.corpora.base import scan_files
from sonotype.corpora.folder import prepare as folder_corpus
from sonotype.errors import AudioError, ModelError, OutputError, ParameterError
from sonotype.evaluation.metrics import label_case_map
from sonotype.features.cache import CacheWarning, FeatureCache
from sonotype.features.config import FeatureConfig, RepresentationConfig
from sonotype.features.extract import build_dataset
from sonotype.features.scaling import Standardizer
from sonotype.inference.batch import predict_files
from sonotype.inference.export import export_onnx
from sonotype.inference.modelio import MODEL_JSON, WEIGHTS_FILE, save_model
from sonotype.items.embeddings import EmbeddingCache
from sonotype.models.registry import build_model
from sonotype.pipeline.config import CorpusConfig
from sonotype.pipeline.evaluate import evaluate_on_corpus
from sonotype.utils.io import (
    OWNER_FILE,
    STALE_AFTER_S,
    NotARegularFileError,
    atomic_dir,
    check_output_dir,
    check_output_file,
    file_digest,
)

FIXTURES = Path(__file__).parent / "fixtures" / "models"
FAST = ["--model", "mlp-small", "--protocol", "holdout:0.34", "--features", "mfcc,rms", "--set", "train.max_epochs=2",
        "--set", "train.num_threads=1", "--set", "evaluate.bootstrap=0", "--quiet"]
SR = 16000


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the console entry point (its error handling included); return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["sonotype", *args])
    code = 0
    try:
        main()
    except SystemExit as done:
        code = int(done.code or 0)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _one_error_line(code: int, err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("features", "configuration: "))]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _corpus(root: Path, labels: tuple[str, str] = ("low", "high"), n: int = 3) -> Path:
    t = np.arange(SR // 2) / SR
    for k, label in enumerate(labels):
        for i in range(n):
            f0 = (200.0 if k == 0 else 2000.0) * (1 + 0.1 * i)
            write_wav(root / label / f"{label}_{i}.wav", (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), SR)
    return root


def _hostile(root: Path) -> list[str]:
    """A FIFO named like audio, a file symlink loop and a folder link back to the root; their names."""
    os.mkfifo(root / "low" / "x.wav")
    (root / "high" / "loop1.wav").symlink_to("loop2.wav")
    (root / "high" / "loop2.wav").symlink_to("loop1.wav")
    (root / "high" / "up").symlink_to(root, target_is_directory=True)
    return ["x.wav", "loop1.wav", "loop2.wav", "up"]


@pytest.fixture
def readonly(monkeypatch: pytest.MonkeyPatch):
    """Make a folder refuse writes: chmod 0o500, or (as root) EROFS from os.mkdir/os.open under it."""
    made: list[Path] = []

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            folder.chmod(0o500)
            made.append(folder)
            return folder
        real_mkdir, real_open = os.mkdir, os.open
        inside = str(folder.resolve()) + os.sep

        def under(p) -> bool:
            return os.path.abspath(os.fsdecode(p)).startswith(inside)

        def mkdir(p, mode=0o777, *a, **k):
            if under(p):
                raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(p))
            return real_mkdir(p, mode, *a, **k)

        def open_(p, flags, mode=0o777, *a, **k):
            if flags & os.O_CREAT and under(p):
                raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(p))
            return real_open(p, flags, mode, *a, **k)

        monkeypatch.setattr(os, "mkdir", mkdir)
        monkeypatch.setattr(os, "open", open_)
        return folder

    yield make
    for f in made:
        f.chmod(0o700)


def _no_space_for(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    """os.open of a new file whose name starts with ``prefix`` fails as on a full disk."""
    real_open = os.open

    def open_(p, flags, mode=0o777, *a, **k):
        if flags & os.O_CREAT and os.path.basename(os.fsdecode(p)).startswith(prefix):
            raise OSError(errno.ENOSPC, "No space left on device", os.fsdecode(p))
        return real_open(p, flags, mode, *a, **k)

    monkeypatch.setattr(os, "open", open_)


def _small_model(dest: Path, labels: list[str], *, n_in: int = 2, scaler_features: int | None = None) -> Path:
    fc = FeatureConfig(sr=SR, n_fft=512, hop_length=256, features=["rms", "centroid"])
    scaler = None
    if scaler_features is not None:
        scaler = Standardizer().fit(np.random.default_rng(0).normal(size=(20, scaler_features)).astype(np.float32))
    net = build_model("mlp-small", (n_in,), len(labels), seed=0)
    return save_model(dest, network=net, labels=labels, feature_config=fc, representation=RepresentationConfig(),
                      scaler=scaler)


def _edit(d: Path, fn) -> None:
    meta = json.loads((d / MODEL_JSON).read_text())
    fn(meta)
    (d / MODEL_JSON).write_text(json.dumps(meta))


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


# ------------------------------------------------------------------ row 6: special files and symlink loops


@pytest.mark.timeout(60)
def test_row6_scan_reports_special_files_and_loops_without_opening_them(tmp_path: Path) -> None:
    root = _corpus(tmp_path / "c")
    names = _hostile(root)
    sock_path = root / "low" / "s.wav"
    sock = None
    if len(str(sock_path)) < 100:  # AF_UNIX path limit
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(sock_path))
        names.append("s.wav")
    try:
        audio_files, skipped = scan_files(root)
    finally:
        if sock is not None:
            sock.close()
    assert sorted(f.name for f in audio_files) == sorted(f"{lab}_{i}.wav" for lab in ("low", "high") for i in range(3))
    why = {Path(s.path).name: s.reason for s in skipped}
    assert sorted(why) == sorted(names)
    assert why["x.wav"].startswith("a FIFO")
    assert why["loop1.wav"].startswith("symlink loop") and why["up"].startswith("symlink loop")
    if sock is not None:
        assert why["s.wav"].startswith("a socket")


@pytest.mark.timeout(60)
def test_row6_nothing_opens_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "x.wav"
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFileError, match="FIFO"):
        file_digest(fifo)
    with pytest.raises(OSError, match="FIFO"):
        FeatureCache(tmp_path / "cache").digest(fifo)
    with pytest.raises(AudioError, match="FIFO"):
        audio.load(fifo)
    (tmp_path / "a.wav").symlink_to("b.wav")
    (tmp_path / "b.wav").symlink_to("a.wav")
    with pytest.raises(OSError) as info:  # ELOOP, not pathlib's RuntimeError
        FeatureCache(tmp_path / "cache").digest(tmp_path / "a.wav")
    assert info.value.errno == errno.ELOOP
    with pytest.raises(AudioError, match="symlink loop"):
        audio.load(tmp_path / "a.wav")


def test_row6_a_followed_link_outside_the_root_is_scanned_once(tmp_path: Path) -> None:
    outside = _corpus(tmp_path / "elsewhere", labels=("mid", "unused"), n=2)
    root = _corpus(tmp_path / "c")
    (root / "mid").symlink_to(outside / "mid", target_is_directory=True)  # a class folder linked in
    (root / "low" / "again").symlink_to(root / "high", target_is_directory=True)  # inside: scanned there
    m = folder_corpus(root)
    assert m.class_counts() == {"high": 3, "low": 3, "mid": 2}
    assert [Path(s.path).name for s in m.skipped] == ["again"]


@pytest.mark.timeout(120)
def test_row6_features_with_a_fifo_and_symlink_loops_finishes(monkeypatch, capsys, tmp_path: Path) -> None:
    root = _corpus(tmp_path / "c")
    names = _hostile(root)
    code, out, err = _main(monkeypatch, capsys, "features", "folder", str(root), "--cache", str(tmp_path / "cache"),
                           "--jobs", "1")
    assert code == 0, err
    assert "6 extracted" in out and "Traceback" not in err
    for name in names:
        assert name in out


@pytest.mark.timeout(300)
def test_row6_train_with_a_fifo_and_symlink_loops_finishes(tmp_path: Path) -> None:
    root = _corpus(tmp_path / "c")
    names = _hostile(root)
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--corpus", "folder", "--root", str(root), "--out", str(run), *FAST])
    assert res.exit_code == 0, res.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_skipped"] == len(names)
    skipped = json.loads((run / "skipped.json").read_text())
    assert sorted(Path(s["path"]).name for s in skipped) == sorted(names)


# ------------------------------------------------------------------ row 7: read-only or full cache and output


def test_row7_readonly_cache_warns_once_and_goes_on(tmp_path: Path, readonly) -> None:
    clips = folder_corpus(_corpus(tmp_path / "c")).clips
    cache = FeatureCache(readonly(tmp_path / "cache"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = build_dataset(clips, FeatureConfig(sr=SR), RepresentationConfig(), cache_dir=cache)
    assert len(ds.clips) == 6 and not ds.skipped
    said = [w for w in caught if issubclass(w.category, CacheWarning)]
    assert len(said) == 1 and "cannot be written" in str(said[0].message), [str(w.message) for w in caught]
    assert cache.writes == 0 and not cache.writable and not cache.check_writable()


def test_row7_embedding_cache_unwritable_warns_once(tmp_path: Path, readonly) -> None:
    store = EmbeddingCache(readonly(tmp_path / "cache"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store.store("ab" * 16, np.zeros((2, 4), np.float32))
        store.store("cd" * 16, np.zeros((2, 4), np.float32))
    assert [str(w.message) for w in caught if issubclass(w.category, CacheWarning)] != []
    assert len([w for w in caught if issubclass(w.category, CacheWarning)]) == 1
    assert store.writes == 0


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc (Linux)")
@pytest.mark.timeout(120)
def test_row7_home_proc_features_goes_on_without_the_cache(monkeypatch, capsys, tmp_path: Path) -> None:
    root = _corpus(tmp_path / "c")
    monkeypatch.setenv("HOME", "/proc")
    monkeypatch.delenv("SONOTYPE_CACHE", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = _main(monkeypatch, capsys, "features", "folder", str(root), "--jobs", "1")
    assert code == 0, err
    assert "6 extracted" in out and "not writable" in out
    assert len([w for w in caught if issubclass(w.category, CacheWarning)]) == 1


@pytest.mark.timeout(120)
def test_row7_train_out_in_a_readonly_folder_is_one_line_before_any_work(monkeypatch, capsys, tmp_path: Path,
                                                                         readonly) -> None:
    root = _corpus(tmp_path / "c")
    out = readonly(tmp_path / "ro") / "run"
    code, _, err = _main(monkeypatch, capsys, "train", "--corpus", "folder", "--root", str(root), "--out", str(out),
                         *FAST)
    line = _one_error_line(code, err)
    assert f"cannot write {out}" in line
    assert "features:" not in err  # refused before the extraction
    assert not out.exists()


@pytest.mark.timeout(300)
def test_row7_train_out_disk_full_at_the_final_write(monkeypatch, capsys, tmp_path: Path) -> None:
    root = _corpus(tmp_path / "c")
    out = tmp_path / "runs" / "run"
    _no_space_for(monkeypatch, ".metrics.json.")
    code, _, err = _main(monkeypatch, capsys, "train", "--corpus", "folder", "--root", str(root), "--out", str(out),
                         *FAST)
    line = _one_error_line(code, err)
    assert f"cannot write {out}" in line and "No space left on device" in line
    assert not out.exists() and os.listdir(out.parent) == []  # nothing partial: the temporary folder is gone


@pytest.mark.timeout(120)
def test_row7_features_out_readonly_or_full(monkeypatch, capsys, tmp_path: Path, readonly) -> None:
    root = _corpus(tmp_path / "c")
    ro = readonly(tmp_path / "ro") / "ds.npz"
    code, _, err = _main(monkeypatch, capsys, "features", "folder", str(root), "--no-cache", "--out", str(ro))
    assert f"cannot write {ro}" in _one_error_line(code, err)
    assert "features:" not in err  # before the extraction
    monkeypatch.undo()
    full = tmp_path / "full" / "ds.npz"
    full.parent.mkdir()
    _no_space_for(monkeypatch, ".ds.npz.")
    code, _, err = _main(monkeypatch, capsys, "features", "folder", str(root), "--no-cache", "--out", str(full))
    assert f"cannot write {full}" in _one_error_line(code, err)
    assert os.listdir(full.parent) == []


def test_row7_atomic_dir_turns_write_faults_into_one_error(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with pytest.raises(OutputError, match=f"cannot write {dest}: No space left"), atomic_dir(dest):
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(PermissionError), atomic_dir(dest):  # an input elsewhere: not the output's fault
        raise PermissionError(errno.EACCES, "Permission denied", "/somewhere/else.wav")
    assert os.listdir(tmp_path) == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="is a regular file, not a folder"):
        check_output_dir(tmp_path / "f")
    with pytest.raises(OutputError, match="is a regular file, not a folder"), atomic_dir(tmp_path / "f", force=True):
        pass
    with pytest.raises(OutputError, match=f"cannot write {tmp_path / 'big'}: .* MB free"):
        check_output_dir(tmp_path / "big", need_bytes=1 << 62)


# ------------------------------------------------------------------ row 8: a folder given as an output file


def test_row8_check_output_file(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputError, match="is an existing folder, not a file"):
        check_output_file(tmp_path / "d")
    os.mkfifo(tmp_path / "p.csv")
    with pytest.raises(OutputError, match="FIFO"):
        check_output_file(tmp_path / "p.csv")
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        check_output_file(tmp_path / "f" / "out.csv")
    assert check_output_file(tmp_path / "new" / "out.csv") == tmp_path / "new" / "out.csv"
    assert not (tmp_path / "new").exists() and sorted(os.listdir(tmp_path)) == ["d", "f", "p.csv"]


@pytest.mark.timeout(120)
def test_row8_features_out_folder_is_one_line_before_extraction(monkeypatch, capsys, tmp_path: Path) -> None:
    root = _corpus(tmp_path / "c")
    (tmp_path / "d").mkdir()
    code, _, err = _main(monkeypatch, capsys, "features", "folder", str(root), "--no-cache", "--out",
                         str(tmp_path / "d"))
    assert "is an existing folder" in _one_error_line(code, err)
    assert "features:" not in err


def test_row8_export_onnx_to_a_folder_is_refused_first(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputError, match="is an existing folder"):  # before the model is even read
        export_onnx(tmp_path / "no-such-model", tmp_path / "d")


def test_row8_predict_batch_out_folder_is_refused_first(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputError, match="is an existing folder"):  # before the model is even read
        predict_files(tmp_path / "no-such-model", [tmp_path], out=tmp_path / "d", progress=False)


@pytest.mark.timeout(120)
def test_row8_predict_csv_folder_is_one_line(monkeypatch, capsys, tmp_path: Path) -> None:
    model = _small_model(tmp_path / "m", ["high", "low"])
    wav = _corpus(tmp_path / "c") / "low" / "low_0.wav"
    (tmp_path / "d").mkdir()
    code, _, err = _main(monkeypatch, capsys, "predict", str(model), str(wav), "--csv", str(tmp_path / "d"))
    assert "is an existing folder" in _one_error_line(code, err)


# ------------------------------------------------------------------ row 10: model.json too deep or inconsistent


def test_row10_deeply_nested_model_json_is_a_model_error(tmp_path: Path) -> None:
    d = _small_model(tmp_path / "m", ["high", "low"])
    (d / MODEL_JSON).write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ModelError, match="nested 200000 deep"):
        sonotype.load_model(d)
    deep: dict = {}
    node = deep
    for _ in range(100):
        node["x"] = {}
        node = node["x"]
    _copy(_small_model(tmp_path / "m2", ["high", "low"]), tmp_path / "m3")
    _edit(tmp_path / "m3", lambda m: m.update(extra={"deep": deep, "text": "[[[[" * 50}))
    with pytest.raises(ModelError, match="nested 103 deep"):  # the object, extra, deep and 100 more
        sonotype.load_model(tmp_path / "m3")


def test_row10_swapped_labels_are_refused(tmp_path: Path) -> None:
    d = _small_model(tmp_path / "m", ["angry", "calm", "sad"])
    assert sonotype.load_model(d).labels == ["angry", "calm", "sad"]
    _edit(d, lambda m: m.update(labels=["calm", "angry", "sad"]))
    with pytest.raises(ModelError, match=r"are not the labels weights.safetensors was saved with"):
        sonotype.load_model(d)


def test_row10_label_count_against_the_network_output(tmp_path: Path) -> None:
    d = _small_model(tmp_path / "m", ["angry", "calm", "sad"])

    def add(m: dict) -> None:
        m["labels"].append("happy")
        m["architecture"]["n_classes"] = 4

    _edit(d, add)
    with pytest.raises(ModelError, match="are not the labels"):  # the digest sees it first
        sonotype.load_model(d)
    w = d / WEIGHTS_FILE  # the same edit on weights saved without a labels digest: the count check
    w.write_bytes(save_file_without_digest(w))
    _edit(d, lambda m: m["files"].update({WEIGHTS_FILE: file_digest(w)}))
    with pytest.raises(ModelError, match=r"4 labels .* outputs 3 classes"):
        sonotype.load_model(d)


def save_file_without_digest(path: Path) -> bytes:
    """The weights as older sonotype wrote them: metadata ``{"format"}`` only."""
    with safe_open(str(path), framework="pt") as f:
        return save({k: f.get_tensor(k) for k in f.keys()}, metadata={"format": "sonotype-model"})  # noqa: SIM118


def test_row10_scaler_width_against_the_input(tmp_path: Path) -> None:
    d = _small_model(tmp_path / "m", ["high", "low"], n_in=2, scaler_features=5)
    with pytest.raises(ModelError, match=r"statistics of 5 features .* has 2 input features"):
        sonotype.load_model(d)


@pytest.mark.parametrize("version", [1, 2])
def test_row10_fixtures_without_a_labels_digest_still_load_and_still_count(tmp_path: Path, version: int) -> None:
    d = _copy(FIXTURES / f"v{version}", tmp_path / "m")
    labels = sonotype.load_model(d).labels
    _edit(d, lambda m: m.update(labels=list(reversed(m["labels"]))))  # no digest recorded: not checked
    assert sonotype.load_model(d).labels == list(reversed(labels))

    def add(m: dict) -> None:
        m["labels"].append("extra")
        m["architecture"]["n_classes"] += 1

    _edit(d, add)
    with pytest.raises(ModelError, match=f"outputs {len(labels)} classes"):
        sonotype.load_model(d)


# ------------------------------------------------------------------ row 12: temporaries of killed runs


def _dead_owner() -> dict:
    """The owner record of a process that has ended (with its start time, so a reused PID is not taken for it)."""
    code = ("import json, os, socket\nrec = {'pid': os.getpid(), 'host': socket.gethostname()}\n"
            "try:\n    rec['start'] = int(open('/proc/self/stat').read().rsplit(')', 1)[1].split()[19])\n"
            "except OSError:\n    pass\nprint(json.dumps(rec))\n")
    return json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def test_row12_stale_temp_folders_are_removed_by_the_next_run(tmp_path: Path) -> None:
    host = socket.gethostname()
    dead = tmp_path / ".run.0123456789ab.tmp"
    live = tmp_path / ".run.0123456789ac.tmp"
    old = tmp_path / ".run.0123456789ad.tmp"
    fresh = tmp_path / ".run.0123456789ae.tmp"
    other = tmp_path / ".other.0123456789af.tmp"
    for d in (dead, live, old, fresh, other):
        d.mkdir()
        (d / "weights.bin").write_bytes(b"w")
    (dead / OWNER_FILE).write_text(json.dumps(_dead_owner()))
    (live / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "host": host}))
    two_days = time.time() - 2 * STALE_AFTER_S
    for d in (old, other):
        os.utime(d, (two_days, two_days))
    with pytest.warns(UserWarning, match="removed 2 temporary folder"), atomic_dir(tmp_path / "run") as tmp:
        assert json.loads((tmp / OWNER_FILE).read_text())["pid"] == os.getpid()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["run", live.name, fresh.name, other.name])
    assert not (tmp_path / "run" / OWNER_FILE).exists()


@pytest.mark.timeout(120)
def test_row12_a_killed_writer_leaves_a_folder_the_next_one_removes(tmp_path: Path) -> None:
    code = ("import sys, time\nfrom sonotype.utils.io import atomic_dir\n"
            "with atomic_dir(sys.argv[1]) as tmp:\n    print(tmp, flush=True)\n    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    try:
        left = Path(proc.stdout.readline().strip())
    finally:
        proc.kill()
        proc.wait()
    assert left.is_dir() and (left / OWNER_FILE).is_file()  # what kill -9 leaves
    with pytest.warns(UserWarning, match="killed runs"), atomic_dir(tmp_path / "run"):
        assert not left.exists()


def test_row12_stale_cache_temporaries_are_removed_in_the_shard_written(tmp_path: Path) -> None:
    clips = folder_corpus(_corpus(tmp_path / "c")).clips[:1]
    cache = FeatureCache(tmp_path / "cache")
    fcfg = FeatureConfig(sr=SR)
    key = cache.key(clips[0].path, fcfg)
    shard = cache.file_for(key).parent
    shard.mkdir(parents=True)
    stale, recent = shard / f".{key}.npz.0123456789ab.tmp", shard / f".{key}.npz.0123456789ac.tmp"
    elsewhere = shard.parent / "zz" / ".zz.npz.0123456789ab.tmp"
    elsewhere.parent.mkdir()
    for f in (stale, recent, elsewhere):
        f.write_bytes(b"partial")
    two_days = time.time() - 2 * STALE_AFTER_S
    for f in (stale, elsewhere):
        os.utime(f, (two_days, two_days))
    build_dataset(clips, fcfg, RepresentationConfig(), cache_dir=cache)
    assert not stale.exists() and recent.exists() and elsewhere.exists()
    assert cache.writes >= 1


# ------------------------------------------------------------------ evaluate: labels that differ only by case


def test_label_case_map_is_one_to_one() -> None:
    assert label_case_map(["angry", "sad"], ["Angry", "SAD", "happy"]) == {"Angry": "angry", "SAD": "sad"}
    assert label_case_map(["angry", "Angry"], ["ANGRY"]) == {}  # ambiguous on the model's side
    assert label_case_map(["angry"], ["Angry", "ANGRY"]) == {}  # ambiguous on the corpus's side
    assert label_case_map(["angry", "sad"], ["angry", "Sad"]) == {"Sad": "sad"}


@pytest.mark.timeout(120)
def test_evaluate_matches_labels_that_differ_only_by_case(tmp_path: Path) -> None:
    model = _small_model(tmp_path / "m", ["high", "low"])
    root = _corpus(tmp_path / "c", labels=("Low", "High"))
    with pytest.warns(UserWarning, match="ignoring case"):
        m = evaluate_on_corpus(model, CorpusConfig(name="folder", root=str(root)))
    assert m["labels_matched_by_case"] == {"High": "high", "Low": "low"}
    assert m["labels_kept"] == ["high", "low"] and m["n_test_clips"] == 6
    assert "matched ignoring case" in m["protocol"]
    with pytest.raises(ParameterError, match="share nothing"):  # a real mismatch is still refused
        evaluate_on_corpus(model, CorpusConfig(name="folder", root=str(_corpus(tmp_path / "c2", ("a", "b")))))
