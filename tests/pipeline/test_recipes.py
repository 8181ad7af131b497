"""Recipes: every shipped YAML loads, and the recipes for corpora absent from ../shared/data run
end to end on small generated trees with the real layouts and file names.

The generated clips are tones whose pitch depends on the class (plus seeded noise), so every
pipeline stage meets real audio files; ``train.max_epochs=2`` keeps each run to seconds.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import data_dir, write_wav
from sonotype.corpora.registry import get_loader, load_corpus
from sonotype.models.registry import resolved_params
from sonotype.pipeline.config import load_config
from sonotype.pipeline.experiment import run_experiment
from sonotype.recipes import list_recipes, recipe_path
from sonotype.splits.split import LeakWarning

RECIPES = [r["name"] for r in list_recipes()]
SHORT = ["train.max_epochs=2", "train.patience=null", "train.num_threads=1", "evaluate.bootstrap=0", "evaluate.examples=2",
         "evaluate.baseline=false", "jobs=1"]  # one process: pools are tested in test_ensemble/test_experiment


def _tone(k: int, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A class-dependent tone (k-th class -> 220 * 1.5**k Hz) with its harmonic and noise."""
    t = np.arange(int(seconds * sr)) / sr
    f = 220.0 * 1.5**k
    y = 0.4 * np.sin(2 * np.pi * f * t) + 0.2 * np.sin(2 * np.pi * 2 * f * t)
    return (y + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def _run(name: str, root: Path, out: Path, cache: Path, extra: list[str] | None = None) -> dict:
    cfg = load_config(recipe_path(name), [f"corpus.root={root}", f"cache_dir={cache}", *SHORT, *(extra or [])])
    metrics = run_experiment(cfg, out, progress=False)
    assert (out / "model" / "model.json").is_file()
    assert json.loads((out / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]
    return metrics


# --- every recipe is a valid config that names a registered model and corpus -------------------


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_loads_and_names_registered_parts(name):
    cfg = load_config(recipe_path(name))
    assert cfg.name == name
    for cc in cfg.corpus.corpora or [cfg.corpus]:  # a recipe over several corpora: each entry's loader
        get_loader(cc.name)  # raises CorpusError for an unknown corpus
    resolved_params(cfg.model.name, **cfg.model.params)  # unknown model or parameter raises
    if cfg.study:
        resolved_params(cfg.study.model.name, **cfg.study.model.params)
    for cross in cfg.cross:
        get_loader(cross.name)
    assert "Protocol: " in cfg.description, f"{name}: the description must end with its protocol"


# The saved model of a default, a *-best and an encoder recipe is fitted on every clip: none is a fold's model
# chosen by comparing folds (only the test figures come from the folds).
SHIPPED_MODELS = [n for n in RECIPES if n.startswith("default-") or n.endswith(("-best", "-whisper", "-encoders"))]


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_shipped_recipes_save_a_model_fitted_on_every_clip(name):
    from sonotype.pipeline.final import final_how

    cfg = load_config(recipe_path(name))
    for n_splits in (1, 2, 5, 24):  # whatever split count the corpus on the machine gives
        assert final_how(cfg.evaluate.final_model, n_splits) == "all", (name, n_splits)


def test_shipped_model_recipes_are_all_there():
    """The families the rule above covers (a renamed recipe would silently drop out of it)."""
    assert {"default-speech", "default-music", "default-sounds", "default-speech-whisper", "default-music-encoders",
            "default-sounds-encoders", "ravdess-best", "ravdess-whisper", "gtzan-best"} <= set(SHIPPED_MODELS)


def test_every_leaky_recipe_has_its_honest_twin():
    leaky = [n for n in RECIPES if load_config(recipe_path(n)).protocol.name == "random"]
    assert {"gtzan-windows-cnn1d-random", "ravdess-random", "tess-mfcc40-mlp"} <= set(leaky)
    twins = {"gtzan-windows-cnn1d-random": "gtzan-windows-cnn1d", "ravdess-random": "ravdess-resmlp-aug",
             "tess-mfcc40-mlp": "tess-by-speaker", "savee-cross": "savee-best"}
    for bad in leaky:
        good = load_config(recipe_path(twins[bad]))
        assert good.protocol.name != "random"
    for corpus in ("ravdess", "tess", "emodb", "fsdd", "gtzan", "cremad", "savee", "dusha"):
        assert load_config(recipe_path(f"{corpus}-best")).protocol.name != "random"


def test_overrides_reach_the_config():
    cfg = load_config(recipe_path("ravdess-cnn1d"), ["train.max_epochs=3", "protocol.k=2", "model.params.dropout=0.2"])
    assert (cfg.train.max_epochs, cfg.protocol.k, cfg.model.params["dropout"]) == (3, 2, 0.2)
    assert cfg.model.params["channels"] == [64, 128, 128], "an override keeps the recipe's other params"


# --- generated trees with the real layouts -------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def gtzan_root(tmp_path_factory):
    """Original-release layout ``genres/<genre>/<genre>.000NN.au``: 3 genres x 6 tracks of 6 s."""
    root = tmp_path_factory.mktemp("gtzan")
    rng = np.random.default_rng(1)
    sr = 22050
    for k, genre in enumerate(("blues", "classical", "metal")):
        for idx in (0, 1, 2, 3, 90, 91):
            write_wav(root / "genres" / genre / f"{genre}.{idx:05d}.au", _tone(k, 6.0, sr, rng), sr,
                      format="AU", subtype="PCM_16")
    return root


def test_gtzan_tree_is_read_from_au_files(gtzan_root):
    m = load_corpus("gtzan", gtzan_root, seed_split=True)
    assert len(m.clips) == 18 and m.labels == ["blues", "classical", "metal"]
    assert sorted({c.meta["split"] for c in m.clips}) == ["test", "train"]


@pytest.mark.parametrize("name", ["gtzan-mean37-mlp", "gtzan-mean37-mlp-small", "gtzan-frames-mlp", "gtzan-best"])
def test_gtzan_seed_split_recipes_run(name, gtzan_root, cache, tmp_path):
    m = _run(name, gtzan_root, tmp_path / "run", cache)
    assert m["n_test_clips"] == 6  # files 90 and 91 of each genre
    assert m["labels"] == ["blues", "classical", "metal"]


def test_gtzan_subset_study_ranks_every_subset(gtzan_root, cache, tmp_path):
    m = _run("gtzan-subsets", gtzan_root, tmp_path / "run", cache, ["study.subsets=[mfcc, chroma, '0-4']"])
    assert sorted(s["subset"] for s in m["study"]) == ["0-4", "chroma", "mfcc"]
    assert sorted(s["n_features"] for s in m["study"]) == [5, 12, 20]


def test_gtzan_window_split_leaks_and_track_split_does_not(gtzan_root, cache, tmp_path):
    with pytest.warns(LeakWarning):
        leaky = _run("gtzan-windows-cnn1d-random", gtzan_root, tmp_path / "random", cache)
    honest = _run("gtzan-windows-cnn1d", gtzan_root, tmp_path / "track", cache)
    assert leaky["item_level_split"] and not honest["item_level_split"]
    assert leaky["n_items"] == honest["n_items"] == 18 * 2  # two 5 s windows (1 s hop) per 6 s track
    # By track: every test clip's windows are all on the test side.
    rows = list(csv.DictReader((tmp_path / "track" / "predictions.csv").open()))
    assert len(rows) == honest["n_test_clips"] == len({r["clip_id"] for r in rows})


def test_gtzan_fault_filtered_split_csv(gtzan_root, cache, tmp_path):
    split = tmp_path / "split.csv"
    rows = ["clip,split"]
    for genre in ("blues", "classical", "metal"):
        rows += [f"{genre}.00000,train", f"{genre}.00001,train", f"{genre}.00002,valid",
                 f"{genre}.00003,train", f"{genre}.00090,test"]  # 00091 left out, as replicas are
    split.write_text("\n".join(rows) + "\n")
    m = _run("gtzan-fault-filtered", gtzan_root, tmp_path / "run", cache, [f"corpus.options.split_csv={split}"])
    assert m["n_test_clips"] == 3 and m["n_clips"] == 15


def test_gtzan_images_recipe_runs(gtzan_root, cache, tmp_path):
    m = _run("gtzan-images-cnn2d", gtzan_root, tmp_path / "run", cache)
    assert m["representation"] == "logmel" and m["n_items"] == 18


def _tess_tree(root: Path, words=("back", "bar", "base"), seconds: float = 0.6) -> Path:
    rng = np.random.default_rng(2)
    sr = 24414
    folders = {"angry": "angry", "disgust": "disgust", "fear": "Fear", "happy": "happy", "neutral": "neutral",
               "ps": "Pleasant_surprise", "sad": "Sad"}
    for k, (code, folder) in enumerate(folders.items()):
        for spk in ("OAF", "YAF"):
            for w in words:
                write_wav(root / f"{spk}_{folder}" / f"{spk}_{w}_{code}.wav", _tone(k, seconds, sr, rng), sr)
    return root


def _savee_tree(root: Path) -> Path:
    """Original layout ``AudioData/<SPEAKER>/<code><NN>.wav``."""
    rng = np.random.default_rng(3)
    sr = 44100
    codes = ("a", "d", "f", "h", "n", "sa", "su")
    for spk in ("DC", "JE", "JK", "KL"):
        for k, code in enumerate(codes):
            for take in (1, 2):
                write_wav(root / "AudioData" / spk / f"{code}{take:02d}.wav", _tone(k, 0.7, sr, rng), sr)
    return root


@pytest.mark.filterwarnings("ignore::sonotype.splits.split.LeakWarning")  # the seed's random TESS split
def test_savee_cross_and_best(tmp_path, cache):
    tess = _tess_tree(tmp_path / "tess")
    savee = _savee_tree(tmp_path / "savee")
    m = _run("savee-cross", tess, tmp_path / "cross", cache, [f"cross=[{{name: savee, root: {savee}}}]"])
    (cross,) = m["cross"]
    assert cross["n_test_clips"] == 56 and len(cross["labels_kept"]) == 7
    # The model taken to SAVEE is fitted on all of TESS, and the leak is said as it is: clips split, speakers straddle.
    fm = m["final_model"]
    assert fm["how"] == "all" and fm["n_clips"] == m["n_clips"] == 42 and fm["train_groups"] == ["OAF", "YAF"]
    assert "LEAKS: random split over clips: 2 of 2 speakers on both sides" in m["protocol"]
    best = _run("savee-best", savee, tmp_path / "best", cache, ["augment.copies=1"])
    assert best["protocol_name"] == "logo" and len(best["folds"]) == 4 and best["n_test_clips"] == 56


def test_cremad_recipes_run(tmp_path, cache):
    """Repository layout ``AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav``; happy/neutral/sad kept."""
    rng = np.random.default_rng(4)
    sr = 16000
    root = tmp_path / "cremad"
    for a in range(1001, 1007):
        for k, emo in enumerate(("HAP", "NEU", "SAD", "ANG")):
            for sent, lvl in (("DFA", "XX"), ("IEO", "HI")):
                write_wav(root / "AudioWAV" / f"{a}_{sent}_{emo}_{lvl}.wav", _tone(k, 0.8, sr, rng), sr)
    for name in ("cremad-hns-cnn1d", "cremad-hns-cnn2d", "cremad-best"):
        m = _run(name, root, tmp_path / name, cache, ["augment.copies=1"] if name == "cremad-best" else [])
        assert m["labels"] == ["happy", "neutral", "sad"], name
        assert m["n_test_clips"] == 36, name  # every actor tested once (k-fold by actor)


def test_dusha_recipes_run(tmp_path, cache):
    """``crowd_train``/``crowd_test`` with raw annotator rows (several per clip) and ``wavs/``."""
    rng = np.random.default_rng(5)
    sr = 16000
    root = tmp_path / "dusha"
    emos = ("positive", "sad", "angry", "neutral")
    for part, n_spk in (("crowd_train", 4), ("crowd_test", 2)):
        lines = []
        for s in range(n_spk):
            for k, emo in enumerate(emos):
                for i in range(2 + (emo == "neutral")):  # neutral dominates, as in Dusha
                    h = f"{part}{s}{emo}{i}"
                    write_wav(root / part / "wavs" / f"{h}.wav", _tone(k, 0.9, sr, rng), sr)
                    for ann in range(3):
                        lines.append(json.dumps({
                            "hash_id": h, "audio_path": f"wavs/{h}.wav", "duration": 0.9, "annotator_emo": emo,
                            "annotator_id": f"a{ann}", "golden_emo": None, "speaker_text": "текст",
                            "speaker_emo": emo, "source_id": f"{part}-spk{s}"}, ensure_ascii=False))
        (root / part / f"raw_{part}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name in ("dusha-balanced", "dusha-best"):
        m = _run(name, root, tmp_path / name, cache)
        assert m["labels"] == ["angry", "neutral", "positive", "sad"], name
        assert m["protocol_name"] == "official"
        assert m["n_clips"] == 48, name  # balanced: every emotion cut down to the 12 positive clips
        rows = list(csv.DictReader((tmp_path / name / "predictions.csv").open()))
        assert len(rows) == m["n_test_clips"] and all("/crowd_test/" in r["path"] for r in rows), name


def test_binary_two_folder_segments(tmp_path, cache):
    """Two class folders of whole songs cut into 15 s segments; songs never straddle the split."""
    rng = np.random.default_rng(6)
    sr = 8000
    root = tmp_path / "binary"
    for k, label in enumerate(("classical", "rap")):
        for s in range(5):
            write_wav(root / label / f"song{s}.wav", _tone(k, 31.0, sr, rng), sr)
    m = _run("binary-segments", root, tmp_path / "run", cache)
    assert m["n_clips"] == 20  # 2 whole 15 s segments per 31 s song, the last second dropped
    rows = list(csv.DictReader((tmp_path / "run" / "predictions.csv").open()))
    test_songs = {Path(r["path"]).parent.name + "/" + Path(r["path"]).name for r in rows}
    assert len(rows) == 2 * len(test_songs)  # both segments of every test song are tested


def test_short_recipe_run_twice_gives_identical_metrics(tmp_path, cache):
    savee = _savee_tree(tmp_path / "savee")
    # a network (savee-best itself is a deterministic linear fit); the augmented copies are seeded too
    extra = ["model={name: resmlp, params: {width: 32, blocks: 1}}", "train.max_epochs=3", "augment.copies=1",
             "features.features=[mfcc, rms]"]  # the seeding is under test, not features
    a = _run("savee-best", savee, tmp_path / "a", cache, extra)
    b = _run("savee-best", savee, tmp_path / "b", cache, extra)
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "confusion", "folds"):
        assert a[key] == b[key], key


@pytest.mark.realdata
def test_tess_by_speaker_on_real_data(tmp_path):
    root = data_dir("tess")
    m = _run("tess-by-speaker", root, tmp_path / "run", tmp_path / "cache", ["train.max_epochs=30"])
    assert m["n_test_clips"] == 280 and [f["name"] for f in m["folds"]] == ["test group OAF", "test group YAF"]
    fm = m["final_model"]  # the saved model is fitted on both speakers, not on one fold's speaker
    assert fm["how"] == "all" and fm["n_clips"] == m["n_clips"] == 280 and fm["train_groups"] == ["OAF", "YAF"]
    assert m["balanced_accuracy"] > 0.3  # chance is 1/7
