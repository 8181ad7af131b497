"""Corpus loaders: on the real files in ../shared/data and on generated trees mimicking each layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import data_dir, write_wav
from sonotype.corpora.base import CORPORA, Manifest
from sonotype.corpora.emotions import CODES, EMOTIONS, shared_labels, unify
from sonotype.corpora.registry import get_loader, load_corpus
from sonotype.errors import CorpusError

SR = 8000


def tiny(path: Path, seconds: float = 0.05, sr: int = SR) -> Path:
    """A very short deterministic WAV, enough for loaders and header reads."""
    n = int(seconds * sr)
    y = 0.1 * np.sin(2 * np.pi * 440 * np.arange(n) / sr).astype(np.float32)
    return write_wav(path, y, sr)


def reasons(m: Manifest) -> dict[str, str]:
    return {Path(s.path).name: s.reason for s in m.skipped}


# ---------------------------------------------------------------- registry and common contract


def test_every_corpus_is_registered():
    get_loader("folder")
    assert set(CORPORA) == {
        "folder",
        "gtzan",
        "ravdess",
        "tess",
        "savee",
        "cremad",
        "emodb",
        "dusha",
        "fsdd",
        "esc50",
        "demo",
    }


@pytest.mark.parametrize(
    "name", ["folder", "gtzan", "ravdess", "tess", "savee", "cremad", "emodb", "dusha", "fsdd", "demo"]
)
def test_missing_root_is_a_corpus_error(name, tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(name, tmp_path / "nope")
    with pytest.raises(CorpusError, match="not found"):
        get_loader(name)(tmp_path / "nope")  # the loader checks too, not only load_corpus


@pytest.mark.parametrize("name", ["folder", "gtzan", "ravdess", "tess", "savee", "cremad", "emodb", "fsdd"])
def test_empty_root_is_a_corpus_error(name, tmp_path):
    with pytest.raises(CorpusError, match="no audio files"):
        load_corpus(name, tmp_path)


# Every loader, given files of another corpus, says what naming it expected, with an example.
_EXAMPLES = {
    "ravdess": "Actor_12/03-01-05-01-02-01-12.wav", "tess": "OAF_Fear/OAF_back_fear.wav",
    "emodb": "wav/03a01Wa.wav", "cremad": "AudioWAV/1001_DFA_ANG_XX.wav", "fsdd": "recordings/7_jackson_32.wav",
    "savee": "AudioData/DC/a01.wav", "gtzan": "genres/blues/blues.00000.au", "folder": "<root>/angry/clip01.wav",
}


@pytest.mark.parametrize("name", sorted(_EXAMPLES))
def test_a_root_of_another_corpus_names_the_expected_files(name, tmp_path):
    # One file of a naming no loader but `folder` reads, directly in the root (folder needs a class folder).
    write_wav(tmp_path / "recording x.wav", np.zeros(800, np.float32), 8000)
    with pytest.raises(CorpusError) as err:
        load_corpus(name, tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{name} found no file named like {_EXAMPLES[name]} under {tmp_path.resolve()}")
    assert "1 file(s) skipped, 1 of them as recording x.wav: " in msg and msg.endswith("Is this the right corpus?")


@pytest.mark.realdata
def test_ravdess_loader_on_the_real_tess_folder_says_so():
    with pytest.raises(CorpusError) as err:
        load_corpus("ravdess", data_dir("tess"))
    msg = str(err.value)
    assert msg.startswith("ravdess found no file named like Actor_12/03-01-05-01-02-01-12.wav under ")
    assert "280 file(s) skipped, 280 of them as OAF_" in msg and "not a RAVDESS name" in msg


def test_unknown_corpus_and_unknown_option(tmp_path):
    with pytest.raises(CorpusError, match="unknown corpus 'nosuch'"):
        load_corpus("nosuch", tmp_path)
    tiny(tmp_path / "a" / "x.wav")
    with pytest.raises(CorpusError, match=r"no option.*grup_regex"):
        load_corpus("folder", tmp_path, grup_regex="x")


# ---------------------------------------------------------------- real data


@pytest.mark.realdata
def test_ravdess_real():
    m = load_corpus("ravdess", data_dir("ravdess"))
    assert len(m) == 960 and not m.skipped
    assert len(m.group_counts()) == 16 and set(m.group_counts().values()) == {60}
    assert m.class_counts() == {k: 64 if k == "neutral" else 128 for k in EMOTIONS}
    c = next(c for c in m if Path(c.path).name == "03-01-06-02-01-01-07.flac")
    assert (c.label, c.group) == ("fearful", "Actor_07")
    assert c.meta == {
        "code": "06",
        "modality": "audio-only",
        "vocal_channel": "speech",
        "intensity": "strong",
        "statement": 1,
        "repetition": 1,
        "actor": 7,
        "gender": "male",
    }
    assert [c.path for c in m] == sorted(c.path for c in m)
    assert all(Path(c.path).is_absolute() for c in m)
    # A filter that leaves no clip is an error that says why every file was left out.
    with pytest.raises(CorpusError, match=r"960 file\(s\) skipped, 960 of them .*speech file left out"):
        load_corpus("ravdess", data_dir("ravdess"), vocal_channel="song")


@pytest.mark.realdata
def test_tess_real():
    m = load_corpus("tess", data_dir("tess"))
    assert len(m) == 280 and not m.skipped
    assert m.group_counts() == {"OAF": 140, "YAF": 140}
    assert m.class_counts() == {
        k: 40 for k in ("angry", "disgust", "fearful", "happy", "neutral", "sad", "surprised")
    }
    odd = next(c for c in m if Path(c.path).name == "OA_bite_neutral.wav")
    assert odd.group == "OAF" and "OA" in odd.meta["note"] and odd.label == "neutral"
    ps = [c for c in m if c.meta["code"] == "ps"]
    assert len(ps) == 40 and {c.label for c in ps} == {"surprised"}


@pytest.mark.realdata
def test_emodb_real():
    m = load_corpus("emodb", data_dir("emodb"))
    assert len(m) == 339 and not m.skipped
    assert m.class_counts() == {"angry": 127, "happy": 71, "neutral": 79, "sad": 62}
    assert len(m.group_counts()) == 10
    c = next(c for c in m if Path(c.path).name == "03a01Wa.wav")
    assert (c.label, c.group, c.meta["text"], c.meta["version"], c.meta["gender"]) == (
        "angry",
        "03",
        "a01",
        "a",
        "male",
    )


@pytest.mark.realdata
def test_fsdd_real():
    m = load_corpus("fsdd", data_dir("fsdd"))
    assert len(m) == 3000 and not m.skipped
    assert m.group_counts() == {s: 500 for s in ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")}
    assert m.class_counts() == {str(d): 300 for d in range(10)}
    # the parent folder works as root too (recordings/ is found)
    assert len(load_corpus("fsdd", data_dir("fsdd", "recordings"))) == 3000


@pytest.mark.realdata
def test_gtzan_real_with_mp3_and_split():
    root = data_dir("gtzan")
    m = load_corpus("gtzan", root)
    assert len(m) == 31 and not m.skipped
    assert len(m.group_counts()) == 31 and m.class_counts()["blues"] == 4
    mp3 = next(c for c in m if c.path.endswith(".mp3"))
    assert (mp3.group, mp3.meta["index"], mp3.meta["format"]) == ("blues.00099", 99, "mp3")
    split = load_corpus("gtzan", root, split_csv=data_dir("gtzan", "reference", "fault_filtered_split.csv"))
    assert len(split) == 30
    assert len(load_corpus("gtzan", root, split_csv="reference/fault_filtered_split.csv")) == 30
    assert [(Path(s.path).name, s.reason.split(" /")[0]) for s in split.skipped] == [
        ("metal.00004.wav", "not in the split file")
    ]
    by = {c.group: c.meta["split"] for c in split}
    assert by["blues.00099"] == "test" and by["disco.00028"] == "train" and by["blues.00000"] == "valid"
    assert sorted(set(by.values())) == ["test", "train", "valid"]


# ---------------------------------------------------------------- generated trees


def test_folder_tree(tmp_path):
    tiny(tmp_path / "dog" / "alice_01.wav")
    tiny(tmp_path / "dog" / "sub" / "bob_01.flac")
    tiny(tmp_path / "cat" / "alice_02.ogg")
    tiny(tmp_path / "stray.wav")
    (tmp_path / "cat" / "notes.txt").write_text("x")
    (tmp_path / "cat" / "weird.wav").write_bytes(b"")  # audio by extension: the loader keeps it
    m = load_corpus("folder", tmp_path)
    assert m.class_counts() == {"cat": 2, "dog": 2}
    assert all(c.group == c.path for c in m)
    assert reasons(m) == {
        "notes.txt": "not an audio file (extension '.txt')",
        "stray.wav": "file directly in the root: no class folder",
    }
    g = load_corpus("folder", tmp_path, group_regex=r"^([a-z]+)_\d+$")
    assert g.group_counts() == {"alice": 2, "bob": 1}
    assert "does not match" in reasons(g)["weird.wav"]
    for bad in ("([a-z]+", r"^[a-z]+_\d+$"):
        with pytest.raises(CorpusError, match="group_regex"):
            load_corpus("folder", tmp_path, group_regex=bad)


def test_gtzan_au_tree_duplicates_and_bad_names(tmp_path):
    g = tmp_path / "genres"
    tiny(g / "blues" / "blues.00000.au")
    tiny(g / "blues" / "blues.00000.mp3")  # same track, lossy copy
    tiny(g / "blues" / "blues.00091.au")
    tiny(g / "rock" / "rock.00005.au")
    tiny(g / "rock" / "jazz.00001.au")  # in the wrong folder
    tiny(g / "rock" / "rock5.au")
    (g / "bextract_single.mf").write_text("x")
    m = load_corpus("gtzan", tmp_path)
    assert [(c.group, c.label, c.meta["index"], c.meta["format"]) for c in m] == [
        ("blues.00000", "blues", 0, "au"),
        ("blues.00091", "blues", 91, "au"),
        ("rock.00005", "rock", 5, "au"),
    ]
    r = reasons(m)
    assert r["blues.00000.mp3"].startswith("duplicate of ") and r["blues.00000.mp3"].split(" ")[2].endswith(
        "blues.00000.au"
    )
    assert "folder 'rock'" in r["jazz.00001.au"]
    assert "not <genre>.000NN" in r["rock5.au"]
    assert "not an audio file" in r["bextract_single.mf"]
    # a bad split file is refused, not misread
    bad = tmp_path / "split.csv"
    bad.write_text("clip,split\nblues.00000,holdout\n")
    with pytest.raises(CorpusError, match="holdout"):
        load_corpus("gtzan", tmp_path, split_csv=bad)


def test_ravdess_song_and_bad_names(tmp_path):
    tiny(tmp_path / "Actor_01" / "03-01-05-02-01-02-01.wav")
    tiny(tmp_path / "Actor_02" / "03-02-03-01-02-01-02.wav")  # song
    tiny(tmp_path / "Actor_02" / "03-01-01-02-01-01-02.wav")  # neutral cannot be strong
    tiny(tmp_path / "Actor_02" / "03-01-09-01-01-01-02.wav")  # no emotion 09
    tiny(tmp_path / "Actor_02" / "03-01-03-01-01-01-05.wav")  # actor 05 in Actor_02
    tiny(tmp_path / "Actor_02" / "readme.wav")
    (tmp_path / "Actor_02" / "02-01-03-01-01-01-02.mp4").write_bytes(b"\0")
    m = load_corpus("ravdess", tmp_path)
    assert [(c.label, c.group, c.meta["vocal_channel"], c.meta["gender"]) for c in m] == [
        ("angry", "Actor_01", "speech", "male"),
        ("happy", "Actor_02", "song", "female"),
    ]
    r = reasons(m)
    assert "neutral has no strong" in r["03-01-01-02-01-01-02.wav"]
    assert "unknown emotion code '09'" in r["03-01-09-01-01-01-02.wav"]
    assert "folder Actor_02" in r["03-01-03-01-01-01-05.wav"]
    assert "not a RAVDESS name" in r["readme.wav"]
    assert "not an audio file" in r["02-01-03-01-01-01-02.mp4"]
    speech = load_corpus("ravdess", tmp_path, vocal_channel="speech")
    assert len(speech) == 1 and "song file left out" in reasons(speech)["03-02-03-01-02-01-02.wav"]
    with pytest.raises(CorpusError, match="vocal_channel"):
        load_corpus("ravdess", tmp_path, vocal_channel="sung")


def test_tess_tree_ignores_folder_names(tmp_path):
    tiny(tmp_path / "YAF_pleasant_surprised" / "YAF_back_ps.wav")
    tiny(tmp_path / "OAF_Fear" / "OAF_bar_fear.wav")
    tiny(tmp_path / "whatever" / "YAF_bath_happy.wav")
    tiny(tmp_path / "OAF_neutral" / "OA_bite_neutral.wav")
    tiny(tmp_path / "YAF_neutral" / "OA_dog_neutral.wav")  # OA in a YAF folder: not clearly OAF
    tiny(tmp_path / "YAF_sad" / "YAF_dog_bored.wav")
    tiny(tmp_path / "YAF_sad" / "dog.wav")
    m = load_corpus("tess", tmp_path)
    assert sorted((c.meta["word"], c.label, c.group) for c in m) == [
        ("back", "surprised", "YAF"),
        ("bar", "fearful", "OAF"),
        ("bath", "happy", "YAF"),
        ("bite", "neutral", "OAF"),
    ]
    r = reasons(m)
    assert "unknown speaker prefix 'OA'" in r["OA_dog_neutral.wav"]
    assert "unknown emotion 'bored'" in r["YAF_dog_bored.wav"]
    assert "<SPEAKER>_<word>_<emotion>" in r["dog.wav"]


def test_savee_both_layouts(tmp_path):
    flat = tmp_path / "flat"
    for name in ("DC_a01", "DC_sa03", "JE_su15", "KL_n30", "JK_h02"):
        tiny(flat / "ALL" / f"{name}.wav")
    tiny(flat / "ALL" / "XX_a01.wav")
    tiny(flat / "ALL" / "DC_x01.wav")
    m = load_corpus("savee", flat)
    assert [(c.group, c.label, c.meta["code"], c.meta["take"], c.meta["layout"]) for c in m] == [
        ("DC", "angry", "a", 1, "flat"),
        ("DC", "sad", "sa", 3, "flat"),
        ("JE", "surprised", "su", 15, "flat"),
        ("JK", "happy", "h", 2, "flat"),
        ("KL", "neutral", "n", 30, "flat"),
    ]
    assert (
        "unknown speaker 'XX'" in reasons(m)["XX_a01.wav"]
        and "codes a d f h n sa su" in reasons(m)["DC_x01.wav"]
    )

    orig = tmp_path / "orig"
    for spk in ("DC", "JE", "JK", "KL"):
        for code in ("a01", "d02", "f03", "h04", "n05", "sa06", "su07"):
            tiny(orig / "AudioData" / spk / f"{code}.wav")
    (orig / "AudioData" / "DC" / "info.txt").write_text("known companion file")
    tiny(orig / "AudioVisualClip" / "DC" / "a01.wav")  # outside AudioData: not scanned
    m = load_corpus("savee", orig)
    assert len(m) == 28 and not m.skipped
    assert m.group_counts() == {s: 7 for s in ("DC", "JE", "JK", "KL")}
    assert set(m.labels) == {"angry", "disgust", "fearful", "happy", "neutral", "sad", "surprised"}

    mixed = tmp_path / "mixed"
    tiny(mixed / "DC" / "a01.wav")
    tiny(mixed / "DC_a01.wav")
    m = load_corpus("savee", mixed)
    assert len(m) == 1 and next(iter(reasons(m).values())).startswith("duplicate of ")


def _cremad_tree(root: Path) -> None:
    for name in (
        "1001_DFA_ANG_XX",
        "1001_IEO_HAP_HI",
        "1002_TIE_NEU_XX",
        "1091_WSI_SAD_LO",
        "1002_ITS_FEA_MD",
    ):
        tiny(root / "AudioWAV" / f"{name}.wav")
    tiny(root / "AudioWAV" / "1001_DFA_BOR_XX.wav")
    tiny(root / "AudioWAV" / "1001_XYZ_ANG_XX.wav")
    tiny(root / "AudioWAV" / "1001-DFA-ANG-XX.wav")
    tiny(root / "AudioMP3" / "1001_DFA_ANG_XX.mp3")  # not scanned: AudioWAV exists


def test_cremad_without_demographics(tmp_path):
    _cremad_tree(tmp_path)
    m = load_corpus("cremad", tmp_path)
    assert [(c.group, c.label, c.meta["sentence"], c.meta["intensity"]) for c in m] == [
        ("1001", "angry", "DFA", "unspecified"),
        ("1001", "happy", "IEO", "high"),
        ("1002", "fearful", "ITS", "medium"),
        ("1002", "neutral", "TIE", "unspecified"),
        ("1091", "sad", "WSI", "low"),
    ]
    assert "age" not in m.clips[0].meta
    r = reasons(m)
    assert "unknown emotion code 'BOR'" in r["1001_DFA_BOR_XX.wav"]
    assert "unknown sentence code 'XYZ'" in r["1001_XYZ_ANG_XX.wav"]
    assert "1001_DFA_ANG_XX" in r["1001-DFA-ANG-XX.wav"]


def test_cremad_with_demographics(tmp_path):
    _cremad_tree(tmp_path)
    (tmp_path / "VideoDemographics.csv").write_text(
        "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n1002,21,Female,Caucasian,Not Hispanic\n"
    )
    # root = AudioWAV itself: the CSV is found in the parent
    m = load_corpus("cremad", tmp_path / "AudioWAV")
    first = m.clips[0].meta
    assert (first["age"], first["sex"], first["race"], first["ethnicity"]) == (
        51,
        "male",
        "Caucasian",
        "Not Hispanic",
    )
    assert m.clips[2].meta["sex"] == "female"
    assert "age" not in m.clips[-1].meta  # actor 1091 not in the CSV
    assert not [s for s in load_corpus("cremad", tmp_path).skipped if "VideoDemographics" in s.path]
    (tmp_path / "bad.csv").write_text("ActorID,Age,Sex,Race,Ethnicity\n1001,old,Male,x,y\n")
    with pytest.raises(CorpusError, match="bad demographics row"):
        load_corpus("cremad", tmp_path, demographics=tmp_path / "bad.csv")


def test_emodb_tree(tmp_path):
    for name in ("03a01Wa", "08b10Lc", "16a05Nb", "11b03Ed"):
        tiny(tmp_path / "wav" / f"{name}.wav")
    tiny(tmp_path / "wav" / "03a01Xa.wav")
    tiny(tmp_path / "wav" / "04a01Wa.wav")
    tiny(tmp_path / "wav" / "03a01W.wav")
    (tmp_path / "lablaut" / "03a01Wa.lab").parent.mkdir()
    (tmp_path / "lablaut" / "03a01Wa.lab").write_text("not scanned")
    m = load_corpus("emodb", tmp_path)
    assert [(c.group, c.label, c.meta["code"], c.meta["gender"]) for c in m] == [
        ("03", "angry", "W", "male"),
        ("08", "boredom", "L", "female"),
        ("11", "disgust", "E", "male"),
        ("16", "neutral", "N", "female"),
    ]
    r = reasons(m)
    assert set(r) == {"03a01Xa.wav", "04a01Wa.wav", "03a01W.wav"}
    assert "unknown emotion letter 'X'" in r["03a01Xa.wav"] and "unknown speaker '04'" in r["04a01Wa.wav"]


def test_fsdd_tree(tmp_path):
    repo = tmp_path / "free-spoken-digit-dataset-master"
    for name in ("0_jackson_0", "9_theo_49", "3_yweweler_12"):
        tiny(repo / "recordings" / f"{name}.wav")
    tiny(repo / "recordings" / "ten_jackson_0.wav")
    (repo / "README.md").write_text("not scanned")
    m = load_corpus("fsdd", tmp_path)
    assert [(c.label, c.group, c.meta["take"]) for c in m] == [
        ("0", "jackson", 0),
        ("3", "yweweler", 12),
        ("9", "theo", 49),
    ]
    assert list(reasons(m)) == ["ten_jackson_0.wav"]


# ---------------------------------------------------------------- dusha


def _dusha_tree(root: Path) -> None:
    wavs = root / "crowd_train" / "wavs"
    for h in ("h1", "h2", "h3", "h4", "h5"):
        tiny(wavs / f"{h}.wav")
    rows = [
        # h1: 2 x positive, 1 x neutral -> positive
        {
            "hash_id": "h1",
            "audio_path": "wavs/h1.wav",
            "duration": 2.5,
            "annotator_emo": "positive",
            "annotator_id": "a",
            "golden_emo": None,
            "speaker_text": "привет",
            "speaker_emo": "positive",
            "source_id": "spk1",
        },
        {
            "hash_id": "h1",
            "audio_path": "wavs/h1.wav",
            "duration": 2.5,
            "annotator_emo": "positive",
            "annotator_id": "b",
            "golden_emo": None,
            "speaker_text": "привет",
            "speaker_emo": "positive",
            "source_id": "spk1",
        },
        {
            "hash_id": "h1",
            "audio_path": "wavs/h1.wav",
            "duration": 2.5,
            "annotator_emo": "neutral",
            "annotator_id": "c",
            "golden_emo": None,
            "speaker_text": "привет",
            "speaker_emo": "positive",
            "source_id": "spk1",
        },
        # h2: a tie -> reported
        {
            "hash_id": "h2",
            "audio_path": "wavs/h2.wav",
            "duration": 1.0,
            "annotator_emo": "sad",
            "annotator_id": "a",
            "source_id": "spk2",
        },
        {
            "hash_id": "h2",
            "audio_path": "wavs/h2.wav",
            "duration": 1.0,
            "annotator_emo": "angry",
            "annotator_id": "b",
            "source_id": "spk2",
        },
        # h3: missing emotion -> reported; no other vote
        {
            "hash_id": "h3",
            "audio_path": "wavs/h3.wav",
            "duration": 1.0,
            "annotator_emo": None,
            "annotator_id": "a",
            "source_id": "spk2",
        },
        # h4: missing duration
        {
            "hash_id": "h4",
            "audio_path": "wavs/h4.wav",
            "duration": "",
            "annotator_emo": "sad",
            "annotator_id": "a",
            "source_id": "spk3",
        },
        # h5: no source id -> group = file
        {
            "hash_id": "h5",
            "audio_path": "wavs/h5.wav",
            "duration": 3.0,
            "annotator_emo": "angry",
            "annotator_id": "a",
            "source_id": "",
        },
        # h6: audio missing
        {
            "hash_id": "h6",
            "audio_path": "wavs/h6.wav",
            "duration": 3.0,
            "annotator_emo": "angry",
            "annotator_id": "a",
            "source_id": "spk4",
        },
    ]
    (root / "crowd_train" / "raw_crowd_train.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n"
    )
    # podcast markup without audio (as distributed): rows reported, not crashing
    (root / "podcast_test").mkdir()
    (root / "podcast_test" / "raw_podcast_test.tsv").write_text(
        "hash_id\taudio_path\tduration\tannotator_emo\tannotator_id\tsource_id\n"
        "p1\twavs/p1.wav\t4.0\tsad\ta\tpod1\n"
        "p2\twavs/p2.wav\tnan\tsad\ta\tpod1\n"
    )


def test_dusha_raw_manifests(tmp_path):
    _dusha_tree(tmp_path)
    m = load_corpus("dusha", tmp_path)
    assert [(Path(c.path).name, c.label, c.group) for c in m] == [
        ("h1.wav", "positive", "spk1"),
        ("h5.wav", "angry", str(tmp_path / "crowd_train" / "wavs" / "h5.wav")),
    ]
    h1 = m.clips[0].meta
    assert (h1["n_votes"], h1["agreement"], h1["duration"], h1["part"], h1["split"]) == (
        3,
        0.6667,
        2.5,
        "crowd",
        "train",
    )
    assert h1["speaker_text"] == "привет" and "golden_emo" not in h1
    why = sorted(s.reason.split(":")[0] for s in m.skipped)
    assert why == [
        "annotators disagree with no majority",
        "audio file not found",
        "audio file not found",
        "row with missing value(s)",
        "row with missing value(s)",
        "row with missing value(s)",
    ]
    assert any(s.path.endswith("raw_crowd_train.jsonl:6") and "emotion" in s.reason for s in m.skipped)
    assert any(s.path.endswith("raw_podcast_test.tsv:3") and "duration" in s.reason for s in m.skipped)


def test_dusha_aggregated_preferred_and_explicit(tmp_path):
    _dusha_tree(tmp_path)
    agg = tmp_path / "processed_dataset_090" / "aggregated_dataset"
    agg.mkdir(parents=True)
    (agg / "crowd_train.jsonl").write_text(
        json.dumps(
            {
                "hash_id": "h2",
                "audio_path": "../../crowd_train/wavs/h2.wav",
                "duration": "1.0",
                "emotion": "sad",
                "source_id": "spk2",
            }
        )
        + "\n"
        + json.dumps(
            {
                "hash_id": "h3",
                "audio_path": "../../crowd_train/wavs/h3.wav",
                "duration": "1.0",
                "emotion": "other",
                "source_id": "spk2",
            }
        )
        + "\n"
        + json.dumps(
            {
                "hash_id": "h3",
                "audio_path": "../../crowd_train/wavs/h3.wav",
                "duration": "1.0",
                "emotion": "other",
                "source_id": "spk2",
            }
        )
        + "\n"
    )
    m = load_corpus("dusha", tmp_path)
    crowd = [c for c in m if c.meta["part"] == "crowd"]
    assert [(Path(c.path).name, c.label) for c in crowd] == [("h2.wav", "sad"), ("h3.wav", "other")]
    assert any("duplicate row for h3" in s.reason for s in m.skipped)
    csv_manifest = tmp_path / "mine.csv"
    csv_manifest.write_text(
        "path,label,duration,speaker\ncrowd_train/wavs/h4.wav,angry,1.5,s9\ncrowd_train/wavs/h5.wav,,1.5,s9\n"
    )
    m = load_corpus("dusha", tmp_path, manifests=["mine.csv"])
    assert [(Path(c.path).name, c.label, c.group) for c in m] == [("h4.wav", "angry", "s9")]
    assert [s.reason for s in m.skipped] == ["row with missing value(s): emotion"]
    with pytest.raises(CorpusError, match="manifest not found"):
        load_corpus("dusha", tmp_path, manifests=["nope.jsonl"])


def test_dusha_without_manifest(tmp_path):
    tiny(tmp_path / "crowd_train" / "wavs" / "x.wav")
    with pytest.raises(CorpusError, match="no manifest found"):
        load_corpus("dusha", tmp_path)


# ---------------------------------------------------------------- demo and emotions


def test_demo_corpus_is_deterministic(tmp_path):
    from sonotype.corpora.demo import CLASSES, generate_demo

    a = generate_demo(tmp_path / "a", takes=2, n_speakers=2, seconds=0.5)
    b = generate_demo(tmp_path / "b", takes=2, n_speakers=2, seconds=0.5)
    m = load_corpus("demo", a)
    assert m.class_counts() == {c: 4 for c in sorted(CLASSES)} and m.group_counts() == {
        "spk1": 10,
        "spk2": 10,
    }
    for c in m:
        rel = Path(c.path).relative_to(a)
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    other = generate_demo(tmp_path / "c", takes=2, n_speakers=2, seconds=0.5, seed=1)
    assert (other / "tone" / "spk1_01.wav").read_bytes() != (a / "tone" / "spk1_01.wav").read_bytes()


def test_emotion_vocabulary():
    for corpus, table in CODES.items():
        for code, name in table.items():
            assert unify(corpus, code) == name
            assert name in EMOTIONS or name in ("boredom", "positive", "other")
    assert (
        unify("tess", "ps") == "surprised"
        and unify("emodb", "L") == "boredom"
        and unify("savee", "sa") == "sad"
    )
    with pytest.raises(CorpusError, match="unknown emotion code 'Q'"):
        unify("emodb", "Q")
    with pytest.raises(CorpusError, match="no emotion codes"):
        unify("gtzan", "x")
    tess = set(CODES["tess"].values())
    savee = set(CODES["savee"].values())
    assert shared_labels(tess, savee) == [
        "neutral",
        "happy",
        "sad",
        "angry",
        "fearful",
        "disgust",
        "surprised",
    ]
    assert shared_labels(CODES["ravdess"].values(), CODES["cremad"].values()) == [
        "neutral",
        "happy",
        "sad",
        "angry",
        "fearful",
        "disgust",
    ]
    assert shared_labels(CODES["emodb"].values(), CODES["dusha"].values()) == ["neutral", "sad", "angry"]


def test_default_demo_is_small_and_not_separable_by_loudness(tmp_path):
    import soundfile as sf

    from sonotype.corpora.demo import generate_demo

    root = generate_demo(tmp_path / "demo")
    m = load_corpus("demo", root)
    assert len(m) == 160 and len(m.group_counts()) == 4 and not m.skipped
    level: dict[str, list[float]] = {}
    for c in m:
        y, sr = sf.read(c.path, dtype="float32")
        assert sr == 16000 and len(y) == 24000
        level.setdefault(c.label, []).append(float(10 * np.log10(np.mean(y**2))))
    lows, highs = [min(v) for v in level.values()], [max(v) for v in level.values()]
    assert max(lows) < min(highs)  # every class's loudness range overlaps every other's


def test_demo_generates_the_shortest_allowed_clips(tmp_path):
    """0.2 s clips (the documented minimum) once crashed: ramps and bursts longer than the clip."""
    import soundfile as sf

    from sonotype.corpora.demo import generate_demo

    root = generate_demo(tmp_path, n_speakers=2, takes=2, seconds=0.2, sr=8000)
    m = load_corpus("demo", root)
    assert len(m) == 20
    assert {sf.info(c.path).frames for c in m.clips} == {1600}
