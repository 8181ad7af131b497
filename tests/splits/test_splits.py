"""sonotype.splits.split: no group on two sides, reproducible folds, documented auto choice."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sonotype.errors import ConfigError, ParameterError, SonotypeError
from sonotype.splits.split import (
    LeakError,
    LeakWarning,
    ProtocolConfig,
    Split,
    check_no_leak,
    describe_protocol,
    make_splits,
    resolve_auto,
)

GROUPED = ["holdout", "kfold:3", "kfold", "logo", "groups", "auto"]


def _layout(seed: int) -> tuple[list[str], list[str]]:
    """A random corpus: 5-30 groups, uneven sizes, 2-5 classes, every group holding several classes."""
    rng = np.random.default_rng(seed)
    n_groups = int(rng.integers(5, 31))
    n_classes = int(rng.integers(2, 6))
    labels, groups = [], []
    for gi in range(n_groups):
        for c in range(n_classes):
            for _ in range(int(rng.integers(1, 4))):
                labels.append(f"c{c}")
                groups.append(f"g{gi:02d}")
    order = rng.permutation(len(labels))
    return [labels[i] for i in order], [groups[i] for i in order]


def _sides(split: Split, groups: list[str]) -> list[set[str]]:
    g = np.asarray(groups)
    return [set(g[split.train]), set(g[split.val]), set(g[split.test])]


@pytest.mark.parametrize("protocol", GROUPED)
def test_no_group_on_two_sides_over_many_layouts(protocol: str) -> None:
    for seed in range(20):
        labels, groups = _layout(seed)
        if protocol == "logo":  # one split per group: keep it to <= 8 groups for speed
            groups = [f"g{int(g[1:]) % 8}" for g in groups]
        spec = f"groups:{groups[0]}" if protocol == "groups" else protocol
        splits = make_splits(labels, groups, spec)
        assert splits
        for s in splits:
            tr, va, te = _sides(s, groups)
            assert not (tr & va) and not (tr & te) and not (va & te), (protocol, seed, s.name)
            every = np.concatenate([s.train, s.val, s.test, s.excluded])
            assert len(every) == len(set(every.tolist())), "an item on two sides"
            assert len(s.test) > 0 and len(s.train) > 0


@pytest.mark.parametrize("protocol", ["kfold:4", "logo"])
def test_every_item_in_exactly_one_test_fold(protocol: str) -> None:
    for seed in range(10):
        labels, groups = _layout(seed)
        if protocol == "logo":
            groups = [f"g{int(g[1:]) % 6}" for g in groups]  # at most 6 groups
        splits = make_splits(labels, groups, protocol)
        tests = np.concatenate([s.test for s in splits])
        assert sorted(tests.tolist()) == list(range(len(labels)))
        for s in splits:
            assert len(s.train) + len(s.val) + len(s.test) == len(labels)
        if protocol == "logo":
            assert len(splits) == len(set(groups))
            assert {s.name for s in splits} == {f"test group {g}" for g in set(groups)}


def test_kfold_stratifies() -> None:
    labels, groups = _layout(3)
    splits = make_splits(labels, groups, "kfold:4")
    overall = np.mean(np.asarray(labels) == "c0")
    for s in splits:
        share = np.mean(np.asarray(labels)[s.test] == "c0")
        assert abs(share - overall) < 0.15


@pytest.mark.parametrize("protocol", ["holdout", "kfold:4", "logo", "random"])
def test_reproducible_from_seed(protocol: str) -> None:
    labels, groups = _layout(7)
    if protocol == "logo":
        groups = [f"g{int(g[1:]) % 8}" for g in groups]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeakWarning)
        a = make_splits(labels, groups, {"name": protocol.split(":")[0], "k": 4, "seed": 1})
        b = make_splits(labels, groups, {"name": protocol.split(":")[0], "k": 4, "seed": 1})
        c = make_splits(labels, groups, {"name": protocol.split(":")[0], "k": 4, "seed": 2})
    assert [s.to_dict() for s in a] == [s.to_dict() for s in b]
    assert [s.to_dict() for s in a] != [s.to_dict() for s in c]
    if protocol == "logo":  # test sides are fixed by the groups; the seed moves validation
        assert [s.test.tolist() for s in a] == [s.test.tolist() for s in c]


def test_random_warns_and_mixes_groups() -> None:
    labels, groups = _layout(1)
    with pytest.warns(LeakWarning, match="ignoring their groups"):
        (s,) = make_splits(labels, groups, "random:0.25")
    tr, _va, te = _sides(s, groups)
    assert tr & te, "random must put some group on both sides"
    assert len(s.test) == pytest.approx(0.25 * len(labels), abs=1)
    assert len(s.val) > 0
    with pytest.raises(LeakError, match="group"):
        check_no_leak(s, groups)


def test_holdout_share_and_groups_distinct() -> None:
    labels = [f"c{i % 3}" for i in range(300)]
    groups = [f"f{i}" for i in range(300)]  # one item per group: stratified item holdout
    (s,) = make_splits(labels, groups, ProtocolConfig(name="holdout", test_size=0.25, val_size=0.0))
    assert len(s.test) == 75 and len(s.val) == 0
    y = np.asarray(labels)
    assert [int(np.sum(y[s.test] == c)) for c in ("c0", "c1", "c2")] == [25, 25, 25]


def test_validation_rules() -> None:
    labels, groups = _layout(5)
    (s,) = make_splits(labels, groups, ProtocolConfig(name="holdout", val_size=0.0))
    assert len(s.val) == 0
    # two speakers (TESS): leave-one-out leaves one training speaker, so no validation
    labels2 = ["a", "b"] * 20
    groups2 = ["OAF"] * 20 + ["YAF"] * 20
    splits = make_splits(labels2, groups2, "auto")
    assert [s.name for s in splits] == ["test group OAF", "test group YAF"]
    assert all(len(s.val) == 0 and len(s.train) == 20 for s in splits)
    assert "fewer than 3 speakers" in describe_protocol("logo", group_name="speaker", splits=splits)
    # groups: explicit train / test
    (t,) = make_splits(labels2, groups2, "groups:YAF")
    assert set(np.asarray(groups2)[t.test]) == {"YAF"} and set(np.asarray(groups2)[t.train]) == {"OAF"}


def test_groups_protocol_train_groups_and_exclusion() -> None:
    labels = ["a", "b"] * 15
    groups = [f"s{i % 5}" for i in range(30)]
    cfg = ProtocolConfig(name="groups", test_groups=["s0"], train_groups=["s1", "s2", "s3"], val_size=0.0)
    (s,) = make_splits(labels, groups, cfg)
    g = np.asarray(groups)
    assert set(g[s.test]) == {"s0"} and set(g[s.train]) == {"s1", "s2", "s3"} and set(g[s.excluded]) == {"s4"}
    with pytest.raises(ConfigError, match=r"unknown group\(s\) \['nobody'\]"):
        make_splits(labels, groups, "groups:nobody")


def test_official_honours_assignments() -> None:
    labels = ["a", "b"] * 10
    groups = [f"t{i}" for i in range(20)]
    assign: list[str | None] = ["train"] * 12 + ["valid"] * 3 + ["test"] * 4 + [None]
    (s,) = make_splits(labels, groups, "official", assignments=assign)
    assert s.train.tolist() == list(range(12))
    assert s.val.tolist() == [12, 13, 14]
    assert s.test.tolist() == [15, 16, 17, 18]
    assert s.excluded.tolist() == [19]
    assert "1 of 20 items unassigned" in s.name
    # no validation in the official split: carved from training by the group rule
    assign2 = ["train"] * 16 + ["dev"] * 0 + ["test"] * 4
    (s2,) = make_splits(labels, groups, ProtocolConfig(name="predefined", field="fold"), assignments=assign2)
    assert len(s2.val) >= 1 and set(s2.val) | set(s2.train) == set(range(16))
    with pytest.raises(ConfigError, match="'holdout'"):
        make_splits(labels, groups, "official", assignments=["holdout"] * 20)
    with pytest.raises(ParameterError, match="needs per-item assignments"):
        make_splits(labels, groups, "official")


def test_official_leaking_groups_warns() -> None:
    labels = ["a", "b"] * 4
    groups = ["x"] * 8
    with pytest.warns(LeakWarning, match="only partly"):
        make_splits(labels, groups, "official", assignments=["train"] * 6 + ["test"] * 2)


def test_auto_choices() -> None:
    labels = ["a", "b"] * 30
    # every item assigned -> official
    assert resolve_auto(labels, ["g"] * 60, ["train"] * 50 + ["test"] * 10).name == "official"
    # partly assigned -> falls back to the group rule
    partly = ["train"] * 59 + [None]
    assert resolve_auto(labels, [f"s{i % 4}" for i in range(60)], partly).name == "logo"
    # one item per group -> stratified holdout
    assert resolve_auto(labels, [str(i) for i in range(60)]).name == "holdout"
    # 12 groups -> logo, 13 groups -> kfold
    assert resolve_auto(labels, [f"s{i % 12}" for i in range(60)]).name == "logo"
    assert resolve_auto(labels, [f"s{i % 13}" for i in range(60)]).name == "kfold"
    # base settings survive
    cfg = resolve_auto(labels, [f"s{i % 20}" for i in range(60)], base=ProtocolConfig(k=4, seed=9))
    assert (cfg.name, cfg.k, cfg.seed) == ("kfold", 4, 9)
    assert len(make_splits(labels, [f"s{i % 20}" for i in range(60)], cfg)) == 4


def test_windows_of_one_clip_stay_together() -> None:
    # 40 clips x 5 windows; the window's group is its clip: no clip is ever split
    labels = [f"c{(i // 5) % 4}" for i in range(200)]
    groups = [f"clip{i // 5}" for i in range(200)]
    for s in make_splits(labels, groups, "auto"):
        tr, va, te = _sides(s, groups)
        assert not (tr & te) and not (tr & va) and not (va & te)


def test_errors_with_numbers() -> None:
    labels = ["a", "b"] * 6
    groups = [f"s{i % 3}" for i in range(12)]
    with pytest.raises(ParameterError, match="k=5 needs at least 5 groups, got 3"):
        make_splits(labels, groups, "kfold")
    with pytest.raises(ParameterError, match="differ in length: 12 != 11"):
        make_splits(labels, groups[:-1], "logo")
    with pytest.raises(ParameterError, match="empty"):
        make_splits([], [], "logo")
    # class "z" only recorded by speaker s2: leaving s2 out tests a class never trained on
    labels2 = ["a", "b", "z"] + ["a", "b"] * 4
    groups2 = ["s2", "s2", "s2"] + [f"s{i % 2}" for i in range(8)]
    with pytest.raises(ParameterError, match=r"\['z'\] appear in test .* not in training"):
        make_splits(labels2, groups2, "logo")
    assert issubclass(LeakError, SonotypeError)


def test_protocol_parse() -> None:
    assert ProtocolConfig.parse("kfold:4").k == 4
    assert ProtocolConfig.parse("holdout:0.25").test_size == 0.25
    assert ProtocolConfig.parse("groups:YAF,OAF").test_groups == ["YAF", "OAF"]
    assert ProtocolConfig.parse("predefined:fold").field == "fold"
    assert ProtocolConfig.parse("leave-one-group-out").name == "logo"
    assert ProtocolConfig.parse(None) == ProtocolConfig()
    d = {"name": "kfold", "k": 3, "seed": 4, "val_size": 0.0}
    cfg = ProtocolConfig.parse(d)
    assert ProtocolConfig.parse(cfg.to_dict()) == cfg and cfg.to_dict()["k"] == 3
    assert ProtocolConfig.parse({"protocol": "logo"}).name == "logo"
    assert ProtocolConfig(name="groups", test_groups="YAF").test_groups == ["YAF"]  # type: ignore[arg-type]
    for bad, match in [
        ("bogus", "protocol name must be one of"),
        ("kfold:1", "k .* >= 2, got 1"),
        ("kfold:x", "cannot read 'x'"),
        ("holdout:1.5", r"test_size must be in \(0, 1\), got 1.5"),
        ("logo:3", "takes no ':' argument"),
        ("groups", "needs test_groups"),
        ({"name": "kfold", "folds": 3}, r"unknown protocol settings \['folds'\]"),
        ({"val_size": -0.1}, "val_size"),
    ]:
        with pytest.raises(ConfigError, match=match):
            ProtocolConfig.parse(bad)  # type: ignore[arg-type]


def test_describe_protocol() -> None:
    assert describe_protocol(ProtocolConfig(name="kfold", k=4), group_name="speaker") == (
        "stratified group 4-fold by speaker, validation 10 % of training speakers, seed 0"
    )
    assert "LEAKS" in describe_protocol("random")
    assert describe_protocol("logo", group_name="actor", n_groups=16).startswith(
        "leave-one-actor-out (16 actors)"
    )
    assert "by track (1000 tracks)" in describe_protocol("holdout", group_name="track", n_groups=1000)
    assert "no validation" in describe_protocol({"name": "logo", "val_size": 0.0}, group_name="actor")
    labels, groups = _layout(2)
    splits = make_splits(labels, groups, "holdout")
    text = describe_protocol("holdout", group_name="track", splits=splits)
    assert (
        f"{len(splits[0].train)} train / {len(splits[0].val)} validation / {len(splits[0].test)} test" in text
    )


def test_rotate_validation_gives_disjoint_group_folds_of_the_training_side() -> None:
    from sonotype.splits.split import rotate_validation

    rng = np.random.default_rng(0)
    groups = np.repeat([f"a{i:02d}" for i in range(12)], 10)
    labels = np.tile(list("abcde"), 24)
    rng.shuffle(labels)
    side = np.flatnonzero(np.isin(groups, [f"a{i:02d}" for i in range(10)]))  # two groups are "test"
    carvings = rotate_validation(side, labels, groups, 4, val_size=0.2, seed=3)
    assert len(carvings) == 4
    seen_val: set[str] = set()
    for train, val in carvings:
        assert len(val) and np.array_equal(np.sort(np.concatenate([train, val])), side)
        tg, vg = set(groups[train]), set(groups[val])
        assert not tg & vg, "a group on both sides of a member's carving"
        assert not vg & seen_val, "validation groups must differ between members"
        seen_val |= vg
    # Every training group is trained on by at least 3 of the 4 members.
    assert all(sum(g in set(groups[t]) for t, _ in carvings) >= 3 for g in set(groups[side]))
    again = rotate_validation(side, labels, groups, 4, val_size=0.2, seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(carvings, again))
    with pytest.raises(ParameterError, match="at least 5 groups"):
        rotate_validation(side[:40], labels, groups, 2, val_size=0.2, seed=0)
    with pytest.raises(ParameterError, match="0 < val_size < 1"):
        rotate_validation(side, labels, groups, 2, val_size=0.0, seed=0)
