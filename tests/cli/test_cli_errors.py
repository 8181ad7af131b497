"""The command line never shows a traceback, a cryptic message or an empty success.

Each case runs the console entry point (``sonotype.cli.main``, with its error handling) and
checks for one line starting ``error:``, exit code 2 and the words a user needs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import data_dir, write_wav
from sonotype.cli import app, main
from sonotype.corpora.demo import generate_demo

runner = CliRunner()
FAST = ["--set", "train.max_epochs=4", "--set", "train.num_threads=1", "--set", "evaluate.bootstrap=0"]


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the console entry point; return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["sonotype", *args])
    code = 0
    try:
        main()
    except SystemExit as done:
        code = int(done.code or 0)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _one_error_line(code: int, err: str) -> str:
    # Progress (a bar, or plain "features: n/N files" lines off a terminal) and `train`'s
    # "configuration: ..." line may precede the error; nothing else may.
    lines = [ln for ln in err.splitlines()
             if ln.strip() and not ln.startswith(("features ━", "features: ", "configuration: "))]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo(tmp_path_factory.mktemp("c") / "corpus", seed=0, n_speakers=3, takes=2, seconds=0.5)


@pytest.fixture(scope="module")
def run_dir(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("r") / "run"
    res = runner.invoke(app, ["train", "--corpus", "demo", "--root", str(corpus), "--out", str(run), "--quiet",
                              "--model", "mlp-small", "--protocol", "holdout:0.34", "--features", "mfcc,rms", *FAST])
    assert res.exit_code == 0, res.output
    return run


# --- YAML and typed values -----------------------------------------------------------------


def test_unparsable_op_is_one_line(monkeypatch, capsys, run_dir, corpus, tmp_path):
    code, _, err = _main(monkeypatch, capsys, "evaluate", str(run_dir / "model"), "--corpus", "demo",
                         "--root", str(corpus), "--out", str(tmp_path / "e"), "--op", "keep: [angry")
    line = _one_error_line(code, err)
    # The message is printed as text: the brackets of the YAML problem survive rich.
    assert line.startswith("error: --op 'keep: [angry' is not valid YAML: expected ',' or ']'")
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.lr=fast", "error: train.lr: expected a number, got 'fast' (str)"),
        ("train.lr=[1", "error: override 'train.lr=[1': value '[1' is not valid YAML: expected ',' or ']'"),
        ("train.batch_size=2.5", "error: train.batch_size: expected an integer, got 2.5 (float)"),
        ("train.class_weights=1", "error: train.class_weights: expected true or false, got 1 (int)"),
        ("representation.kind=stat", "error: representation.kind: expected one of 'stats', 'frames', 'windows', 'logmel', got 'stat'"),
        ("augment.gain_db=[3]", "error: augment.gain_db: expected a list of 2 numbers or null, got [3] (list)"),
        ("jobs=two", "error: jobs: expected an integer, got 'two' (str)"),
    ],
)
def test_config_values_are_type_checked(monkeypatch, capsys, corpus, tmp_path, override, expected):
    code, _, err = _main(monkeypatch, capsys, "train", "--corpus", "demo", "--root", str(corpus),
                         "--out", str(tmp_path / "o"), "--set", override)
    assert _one_error_line(code, err).startswith(expected)


# --- mistakes found before extraction --------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "resnet"], "error: model.name: unknown model 'resnet'; did you mean 'resmlp'? (known: "),
        (["--protocol", "kfold4"], "did you mean 'kfold:4'?"),
        (["--protocol", "kfold:50"], "kfold with k=50 needs at least 50 groups, got 3"),
        (["--model", "resmlp", "--set", "model.params.widht=64"], "model 'resmlp' takes no parameter(s) 'widht'; 'widht': did you mean 'width'?"),
        (["--set", "corpus.ops=[{keep: [tone]}]"], "has 1 label(s) ['tone']: a classifier needs at least two"),
    ],
)
def test_config_mistakes_are_found_before_extraction(monkeypatch, capsys, corpus, tmp_path, args, expected):
    import sonotype.pipeline.experiment as experiment

    def no_extraction(*a, **k):  # reaching extraction would be the bug
        raise AssertionError("feature extraction started")

    monkeypatch.setattr(experiment, "build_run_dataset", no_extraction)
    code, _, err = _main(monkeypatch, capsys, "train", "--corpus", "demo", "--root", str(corpus),
                         "--out", str(tmp_path / "o"), *args)
    assert expected in _one_error_line(code, err)
    assert not (tmp_path / "o").exists()


@pytest.mark.realdata
def test_kfold_50_on_ten_real_groups(monkeypatch, capsys, tmp_path):
    import sonotype.pipeline.experiment as experiment

    monkeypatch.setattr(experiment, "build_run_dataset", lambda *a, **k: pytest.fail("feature extraction started"))
    code, _, err = _main(monkeypatch, capsys, "run", "emodb-best", "--root", str(data_dir("emodb")),
                         "--out", str(tmp_path / "o"), "--set", "protocol=kfold:50")
    line = _one_error_line(code, err)
    assert "protocol 'kfold' on 10 group(s) of 339 clips" in line and "needs at least 50 groups, got 10" in line


@pytest.mark.realdata
def test_emodb_recipe_on_a_tess_folder_names_the_real_cause(monkeypatch, capsys, tmp_path):
    code, _, err = _main(monkeypatch, capsys, "run", "emodb-best", "--root", str(data_dir("tess")),
                         "--out", str(tmp_path / "o"))
    line = _one_error_line(code, err)
    assert line.startswith("error: emodb found no file named like wav/03a01Wa.wav under ")
    assert line.endswith("Is this the right corpus?") and "keep_labels" not in line


@pytest.mark.realdata
def test_corpus_show_ravdess_on_tess_is_an_error(monkeypatch, capsys):
    code, out, err = _main(monkeypatch, capsys, "corpus", "show", "ravdess", str(data_dir("tess")))
    line = _one_error_line(code, err)
    assert "ravdess found no file named like Actor_12/03-01-05-01-02-01-12.wav" in line and not out


# --- nothing is not a success ----------------------------------------------------------------


def test_predict_on_an_empty_folder(monkeypatch, capsys, run_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    code, out, err = _main(monkeypatch, capsys, "predict", str(run_dir / "model"), str(tmp_path / "empty"))
    assert "no audio file in this folder" in _one_error_line(code, err) and not out


def test_features_on_an_empty_folder(monkeypatch, capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, out, err = _main(monkeypatch, capsys, "features", "folder", str(tmp_path / "empty"), "--no-cache")
    assert "no audio files found under" in _one_error_line(code, err) and "X shape" not in out


def test_features_when_no_clip_can_be_read(monkeypatch, capsys, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.wav").write_text("not audio at all")
    code, out, err = _main(monkeypatch, capsys, "features", "folder", str(tmp_path), "--no-cache")
    line = _one_error_line(code, err)
    assert "none of the 1 clip(s) of folder" in line and "x.wav" in line and "X shape" not in out


def test_results_on_an_empty_folder(monkeypatch, capsys, tmp_path):
    code, out, err = _main(monkeypatch, capsys, "results", str(tmp_path))
    assert "no metrics.json at or under" in _one_error_line(code, err) and not out


def test_predict_on_a_run_directory_points_to_its_model(monkeypatch, capsys, run_dir, corpus):
    wav = sorted(corpus.rglob("*.wav"))[0]
    code, _, err = _main(monkeypatch, capsys, "predict", str(run_dir), str(wav))
    assert _one_error_line(code, err) == f"error: {run_dir} is a run directory, not a model: did you mean {run_dir / 'model'}?"


# --- evaluation needs two labels; cross-corpus says where the model comes from ---------------


def test_evaluating_on_one_label_is_refused(monkeypatch, capsys, run_dir, corpus, tmp_path):
    code, _, err = _main(monkeypatch, capsys, "evaluate", str(run_dir / "model"), "--corpus", "demo",
                         "--root", str(corpus), "--out", str(tmp_path / "e"), "--op", "{keep: tone}")
    line = _one_error_line(code, err)
    assert "1 label(s) ['tone']: a classifier needs at least two" in line
    assert "accuracy" not in line and not (tmp_path / "e").exists()


def test_cross_corpus_result_names_origin_labels_and_chance(monkeypatch, capsys, run_dir, tmp_path):
    other = generate_demo(tmp_path / "other", seed=3, n_speakers=2, takes=2, seconds=0.5)
    code, _, err = _main(monkeypatch, capsys, "evaluate", str(run_dir / "model"), "--corpus", "demo",
                         "--root", str(other), "--out", str(tmp_path / "e"), "--op", "{keep: [tone, sweep, chord]}",
                         "--quiet")
    assert code == 0, err
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["trained_on"]["corpus"] == "demo" and m["trained_on"]["recipe"] == "run"
    assert m["trained_on"]["model"] == str((run_dir / "model").resolve())
    assert m["labels_kept"] == ["chord", "sweep", "tone"]
    assert m["labels_dropped_model"] == ["noise_burst", "pulse_train"]
    assert m["chance"] == {"balanced_accuracy": pytest.approx(1 / 3), "accuracy": pytest.approx(1 / 3),
                           "majority_label": "chord"}
    assert "trained on demo (run 'run')" in m["protocol"] and "chance: balanced accuracy 0.333" in m["protocol"]
    assert "model labels with no clip in demo ['noise_burst', 'pulse_train']" in m["protocol"]
    assert m["protocol"] in (tmp_path / "e" / "report.html").read_text().replace("&#x27;", "'")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err  # --quiet: the result line only
    assert lines[0].startswith(f"done {tmp_path / 'e'}: ") and "(trained on demo, run run) on demo" in lines[0]
    assert "labels kept ['chord', 'sweep', 'tone'], dropped ['noise_burst', 'pulse_train']" in lines[0]
    assert lines[0].endswith("chance: balanced 0.333, accuracy 0.333")


# --- version, help, quiet --------------------------------------------------------------------


def test_version(monkeypatch, capsys):
    from sonotype import __version__

    code, out, err = _main(monkeypatch, capsys, "--version")
    assert code == 0 and out.strip() == f"sonotype {__version__}" and not err


def test_help_keeps_square_brackets():
    res = runner.invoke(app, ["evaluate", "--help"])
    assert res.exit_code == 0
    assert "'{keep: [happy, sad]}'" in res.output


def test_predict_help_says_what_window_does_to_the_file_label():
    res = runner.invoke(app, ["predict", "--help"])
    text = " ".join(res.output.split())
    assert "the file's label and probabilities are the mean over the segments" in text


def test_quiet_prints_only_the_result_line(monkeypatch, capsys, corpus, tmp_path):
    args = ["train", "--corpus", "demo", "--root", str(corpus), "--model", "mlp-small", "--protocol", "kfold:3",
            "--features", "mfcc", *FAST]
    code, out, err = _main(monkeypatch, capsys, *args, "--out", str(tmp_path / "q"), "--quiet")
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert not out and len(lines) == 1 and lines[0].startswith(f"done {tmp_path / 'q'}: accuracy "), err
    code, out, err = _main(monkeypatch, capsys, *args, "--out", str(tmp_path / "j"), "--quiet", "--json")
    assert code == 0 and not err.strip() and json.loads(out)["protocol_name"] == "kfold"
    code, out, err = _main(monkeypatch, capsys, *args, "--out", str(tmp_path / "v"))
    assert code == 0 and len(err.splitlines()) > 5  # without --quiet: progress and notes
    assert sum(ln.startswith("done ") for ln in err.splitlines()) == 1


def test_messages_are_not_wrapped_when_not_a_terminal(capsys):
    from sonotype.utils.console import make_console

    msg = "protocol: leave-one-speaker-out (4 speakers), validation 10 % of training speakers, seed 0 " * 3
    make_console().print(msg.strip())
    assert capsys.readouterr().err == msg.strip() + "\n"


# --- corpus show counts usable clips ---------------------------------------------------------


def test_corpus_show_counts_only_usable_clips(tmp_path):
    for i in range(5):
        write_wav(tmp_path / "angry" / f"good{i}.wav", np.full(800, 0.1, np.float32), 8000)
    (tmp_path / "angry" / "bad1.wav").write_bytes(b"")
    (tmp_path / "angry" / "bad2.wav").write_text("text, not a recording\n" * 4)
    res = runner.invoke(app, ["corpus", "show", "folder", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert (d["n_clips"], d["n_files"], d["classes"], d["n_unreadable"]) == (5, 5, {"angry": 5}, 2)
    assert len(d["groups"]) == 5 and d["total_duration"] == pytest.approx(0.5)
    assert sorted(Path(s["path"]).name for s in d["skipped"]) == ["bad1.wav", "bad2.wav"]
    assert all(s["reason"].startswith("unreadable: ") for s in d["skipped"])
    res = runner.invoke(app, ["corpus", "show", "folder", str(tmp_path)])
    assert "5 clips, 1 classes" in res.output and "skipped: 2" in res.output


# --- config.yaml reproduces the run from anywhere --------------------------------------------


def test_config_yaml_stores_absolute_paths(monkeypatch, corpus, tmp_path):
    import yaml

    monkeypatch.chdir(corpus.parent)
    res = runner.invoke(app, ["train", "--corpus", "demo", "--root", corpus.name, "--out", str(tmp_path / "r"),
                              "--quiet", "--model", "mlp-small", "--protocol", "holdout:0.34", "--features", "rms",
                              "--set", "cache_dir=cache", *FAST])
    assert res.exit_code == 0, res.output
    saved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert saved["corpus"]["root"] == str(corpus) and saved["cache_dir"] == str(corpus.parent / "cache")
    monkeypatch.chdir(tmp_path)  # elsewhere: the saved config still finds its corpus
    res = runner.invoke(app, ["run", str(tmp_path / "r" / "config.yaml"), "--out", str(tmp_path / "again"), "--quiet",
                              "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_clips"] == 30
