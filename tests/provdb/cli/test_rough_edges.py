"""Rough edges of issue 16, item 9: ``diff`` keeps long names distinct at 80 columns,
``dlv unstage`` takes files off the staged list, and ``desc`` cuts long layer attributes
between JSON items with an ellipsis."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from provdb.cli.render import clip_json, middle, shorten_names
from provdb.repository import Repository

LONG = [f"encoder.layer.{i}.attention.self.query.weight" for i in range(3)]


def test_middle_keeps_both_ends() -> None:
    assert middle("short", 10) == "short"
    cut = middle("encoder.layer.0.attention.self.query.weight", 28)
    assert len(cut) == 28
    assert cut.startswith("encoder.layer.")
    assert cut.endswith("query.weight")
    assert "…" in cut
    assert middle("abcdef", 2) == "a…"


def test_shorten_names_keeps_rows_distinct() -> None:
    names = ["embeddings.word_embeddings.weight", *LONG, "pooler.dense.bias"]
    short = shorten_names(names, 24)
    assert len(set(short)) == len(names)
    assert all(len(s) <= 24 for s in short)
    assert short[-1] == "pooler.dense.bias"  # short names stay as they are
    assert [s[:15] for s in short[1:4]] == [n[:15] for n in LONG]  # the index is kept
    same_ends = ["a" * 20 + str(i) + "b" * 20 for i in range(3)]
    assert len(set(shorten_names(same_ends, 10))) == 3  # no cut keeps them apart: whole
    assert shorten_names(same_ends, 10) == same_ends


def _weights(scale: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    w = {}
    for i in range(3):
        prefix = f"encoder.layer.{i}.attention.self.query"
        w[f"{prefix}.weight"] = rng.standard_normal((8, 8)).astype(np.float32)
        w[f"{prefix}.bias"] = rng.standard_normal(8).astype(np.float32)
    return {k: v * scale for k, v in w.items()}


def test_diff_at_80_columns_keeps_long_tensor_names_apart(dlv, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    dlv("init", str(repo))
    for name, scale in (("base", 1.0), ("ft", 1.5)):
        save_file(_weights(scale), str(tmp_path / f"{name}.safetensors"))
        dlv("--repo", str(repo), "commit", str(tmp_path / f"{name}.safetensors"), "--name", name)
    out = dlv("--repo", str(repo), "diff", "base", "ft").output
    weight_rows = [line for line in out.splitlines() if "changed" in line]
    assert len(weight_rows) == len(set(weight_rows)) >= 6
    assert all(len(line) <= 80 for line in out.splitlines())


def test_unstage_some_or_all(dlv, tmp_path: Path) -> None:
    dlv("init", str(tmp_path))
    for name in ("a.py", "b.yaml", "c.txt"):
        (tmp_path / name).write_text(name)
    at = ["--repo", str(tmp_path)]
    dlv(*at, "add", str(tmp_path / "a.py"), str(tmp_path / "b.yaml"), str(tmp_path / "c.txt"))
    assert "unstaged" in dlv(*at, "unstage", str(tmp_path / "b.yaml")).output
    with Repository.open(tmp_path) as repo:
        assert [Path(r.path).name for r in repo.staged()] == ["a.py", "c.txt"]
    missing = dlv(*at, "unstage", str(tmp_path / "b.yaml"), ok=False)
    assert missing.exit_code == 1
    assert "not staged" in missing.output
    assert dlv(*at, "unstage").output.count("unstaged") == 2
    with Repository.open(tmp_path) as repo:
        assert repo.staged() == []
        assert repo.unstage() == []
        with pytest.raises(Exception, match="not staged"):
            repo.unstage(["nope.txt"])
    commit = dlv(*at, "add", str(tmp_path / "a.py"))
    assert "staged" in commit.output
    assert json.loads((tmp_path / ".dlv" / "staged.json").read_text())[0]["path"].endswith("a.py")


def test_clip_json_cuts_between_items_with_an_ellipsis() -> None:
    attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2], "group": 1}
    text = json.dumps(attrs)
    assert clip_json(text, 200) == text
    cut = clip_json(text, 40)
    assert len(cut) <= 40
    assert cut == '{"kernel_shape": [3, 3], "pads": [1, 1,…'  # after a comma, never "[1, 1, 1"
    assert text.startswith(cut[:-1])
    # commas inside strings (escaped quotes too) are not item boundaries
    tricky = json.dumps({"name": 'a, "b", c' * 4, "k": 1})
    assert clip_json(tricky, 30) == tricky[:29] + "…"
    assert clip_json(json.dumps({"name": 'x, "y"', "k": [1, 2, 3, 4, 5]}), 30) == (
        '{"name": "x, \\"y\\"", "k": [1,…'
    )


def test_desc_shows_long_attributes_cut_with_an_ellipsis(dlv, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    dlv("init", str(repo))
    net = {
        "layers": [
            {"name": "data", "type": "Input", "attrs": {"shape": [3, 8, 8]}},
            {"name": "conv", "type": "Conv", "attrs": {"kernel": [3, 3], "pads": [1] * 30}},
        ],
        "edges": [["data", "conv"]],
    }
    (tmp_path / "net.json").write_text(json.dumps(net))
    weights = {"conv.weight": np.ones((2, 3, 3, 3), np.float32)}
    save_file(weights, str(tmp_path / "w.safetensors"))
    dlv("--repo", str(repo), "commit", str(tmp_path / "w.safetensors"), "--name", "c",
        "--network", str(tmp_path / "net.json"))  # fmt: skip
    out = dlv("--repo", str(repo), "desc", "c").output
    assert "1, 1," in out
    assert "…" in out
    assert (
        "1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1" not in out
    )
