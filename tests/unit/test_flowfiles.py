"""flowfiles.py: dotted params, foreach labels and the folders a glob lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowmake.config import flowfiles as flowfiles
from flowmake.errors import ConfigError


def test_dotted_lookup_override_and_leaves() -> None:
    params = {"train": {"lr": 0.1, "opt": {"beta": 0.9}}, "seed": 1}
    assert flowfiles.lookup(params, "train.opt.beta") == (True, 0.9)
    assert flowfiles.lookup(params, "train") == (True, params["train"])
    assert flowfiles.lookup(params, "train.nope") == (False, None)
    copy = dict(params)
    assert flowfiles.override(copy, "train.opt.beta", 0.5)
    assert copy["train"]["opt"]["beta"] == 0.5 and params["train"]["opt"]["beta"] == 0.9
    assert not flowfiles.override(copy, "train.new", 1)  # only existing params
    assert flowfiles.leaves(params) == {"seed": 1, "train.lr": 0.1, "train.opt.beta": 0.9}
    assert sorted(flowfiles.names(params)) == ["seed", "train", "train.lr", "train.opt",
                                               "train.opt.beta"]


def test_item_values_and_labels() -> None:
    assert flowfiles.item_values("data/raw/a.b.csv") == {
        "item": "data/raw/a.b.csv", "item.stem": "a.b", "item.name": "a.b.csv",
        "item.dir": "data/raw"}
    assert flowfiles.item_values("top")["item.dir"] == "."
    assert flowfiles.item_values(".env")["item.stem"] == ".env"
    assert flowfiles.item_labels(["a/x.csv", "b/x.txt", "c/y.csv"]) == [
        "a/x.csv", "b/x.txt", "y"]


def test_glob_folders_are_what_decides_the_matches(tmp_path: Path) -> None:
    for rel in ("d/a/1.txt", "d/b/c/2.txt", ".flowmake/x/3.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert flowfiles.glob_folders(tmp_path, "*.txt") == ["."]
    assert flowfiles.glob_folders(tmp_path, "d/a/*.txt") == ["d/a"]
    assert flowfiles.glob_folders(tmp_path, "d/*/*.txt") == ["d/a", "d/b"]
    assert flowfiles.glob_folders(tmp_path, "d/**/*.txt") == ["d", "d/a", "d/b", "d/b/c"]
    assert ".flowmake/x" not in flowfiles.glob_folders(tmp_path, "**/*.txt")
    assert flowfiles.glob_files(tmp_path, "**/*.txt") == ["d/a/1.txt", "d/b/c/2.txt"]
    before = flowfiles.listing(tmp_path, ["d/*/*.txt"])
    (tmp_path / "d/a/new.txt").write_text("")
    assert flowfiles.listing(tmp_path, ["d/*/*.txt"]) != before


@pytest.mark.parametrize(("name", "text", "message"), [
    ("p.yaml", "a: [1\n", "invalid YAML"),
    ("p.json", '{"a": }', "invalid JSON"),
    ("p.toml", "a = \n", "invalid TOML"),
    ("p.yaml", "- 1\n", "must hold a table"),
    ("p.yaml", "1: x\n", "param names must be strings without dots"),
    ("p.yaml", "a.b: 1\n", "param names must be strings without dots"),
    ("p.ini", "a=1\n", "must be YAML, JSON or TOML"),
])
def test_params_file_errors(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        flowfiles.read_params(tmp_path / name, name)
    assert info.value.file == name


def test_an_empty_yaml_file_is_no_params(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("# nothing yet\n")
    assert flowfiles.read_params(tmp_path / "p.yaml", "p.yaml") == {}
