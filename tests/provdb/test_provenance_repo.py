"""Reuse queries, derivatives and the provenance commands on a repository built as the demo
builds it (scripts/demo.py, much shorter training), on both backends."""

from __future__ import annotations

import json
from pathlib import Path

import provdb
from provdb.models import learner, zoo
from provdb.repository import Repository

#: The keys of the provenance commands' --json outputs (scripts and the dashboard read them).
PINS = {
    "segment": ["boundary", "destinations", "edges", "sources", "vertices"],
    "segment.vertices": ["id", "kind", "name", "op", "params", "props", "ref", "role"],
    "segment.edges": ["dst", "kind", "op", "src"],
    "summarize": ["aggregation", "algorithm", "edges", "k", "nodes", "segments"],
    "summarize.nodes": ["frequency", "id", "kind", "label", "members", "segments"],
    "summarize.edges": ["dst", "frequency", "kind", "src"],
    "uses": ["name", "reusers", "snapshot", "total_bytes", "version"],
    "uses.reusers": ["created_at", "id", "name", "shared_bytes", "snapshot", "tensors"],
}


def _train(repo: Repository, name: str, config: learner.TrainConfig, parent: str | None = None):
    net = zoo.digits_cnn(channels=(4, 8))
    with provdb.start_run(repo, name=name, parent=parent, network=net) as run:
        run.log_params(config.to_dict())
        run.log_dataset(config.input_data)
        start = None if parent is None else repo.weights(parent)
        learner.train(net, start, config, on_checkpoint=lambda step, t: run.log_checkpoint(t, step))
        return run.commit(name).id


def _demo(repo: Repository) -> tuple[str, str, str]:
    base_cfg = learner.TrainConfig(iterations=20, checkpoint_every=10, eval_every=0, log_every=0)
    base = _train(repo, "digits-cnn", base_cfg)
    ft = _train(repo, "digits-cnn-ft", base_cfg.replace(base_lr=0.01, iterations=10), base)
    frozen_cfg = base_cfg.replace(base_lr=0.02, iterations=10, lr_mult={"conv*": 0.0})
    frozen = _train(repo, "digits-cnn-frozen", frozen_cfg, base)
    return base, ft, frozen


def test_reuse_segment_summary_and_prov_on_the_demo(repo: Repository, dlv, tmp_path: Path) -> None:
    base, ft, frozen = _demo(repo)
    found = repo.uses(base)
    assert [r.id for r in found.reusers] == [frozen]  # the all-layer fine-tune changed every tensor
    (reuser,) = found.reusers
    conv = {t.name for t in repo.graph.tensors_of(found.snapshot) if t.layer.startswith("conv")}
    assert conv
    assert {t.tensor for t in reuser.tensors} == conv
    weights = repo.weights(base)
    assert reuser.shared_bytes == sum(weights[n].nbytes for n in conv)
    assert 0 < reuser.shared_bytes < found.total_bytes == sum(w.nbytes for w in weights.values())
    assert repo.uses(frozen).reusers == ()  # reuse points forward in time

    down = repo.derivatives(base)
    assert {(e.derived, e.op) for e in down.edges} == {(ft, "finetune"), (frozen, "finetune")}

    seg = repo.segment([base], [frozen])
    kinds = {v.kind for v in seg.vertices}
    assert kinds == {"version", "run", "snapshot", "dataset", "agent"}
    assert {v.id for v in seg.vertices if v.role == "path"} == {
        r.id for r in repo.graph.runs_of([frozen]).values()
    }
    assert ft not in {v.id for v in seg.vertices}  # the sibling fine-tune is not on the path

    root = str(repo.root)
    out = dlv("--repo", root, "segment", "--from", base[:8], "--to", frozen[:8], "--json").output
    assert json.loads(out) == json.loads(json.dumps(seg.to_dict()))
    text = dlv("--repo", root, "segment", "--from", base, "--to", frozen, "--exclude", "agent")
    assert "digits-cnn-frozen" in text.output
    assert "agent" not in text.output
    summary = json.loads(
        dlv(
            "--repo",
            root,
            "summarize",
            "--from",
            base,
            "--to",
            ft,
            "--from",
            base,
            "--to",
            frozen,
            "--json",
        ).output  # fmt: skip
    )
    runs = sorted(n["frequency"] for n in summary["nodes"] if n["kind"] == "run")
    assert runs == [2]  # the two fine-tunes are one workflow (same op and parameter names)
    select = 'select m1 where m1.name like "digits-cnn-%"'
    by_query = json.loads(dlv("--repo", root, "summarize", "--select", select, "--json").output)
    assert by_query["nodes"] == summary["nodes"]  # the same two segments, found by DQL
    assert sorted(summary) == PINS["summarize"]
    assert sorted(summary["nodes"][0]) == PINS["summarize.nodes"]
    assert sorted(summary["edges"][0]) == PINS["summarize.edges"]
    seg_json = json.loads(out)
    assert sorted(seg_json) == PINS["segment"]
    assert sorted(seg_json["vertices"][0]) == PINS["segment.vertices"]
    assert sorted(seg_json["edges"][0]) == PINS["segment.edges"]
    assert "×2" in dlv("--repo", root, "summarize", "--from", base, "--to", ft, "--from", base,
                       "--to", frozen).output  # fmt: skip
    assert "digits-cnn-frozen" in dlv("--repo", root, "uses", "digits-cnn").output
    uses = json.loads(dlv("--repo", root, "uses", "digits-cnn", "--json").output)
    assert sorted(uses) == PINS["uses"]
    assert sorted(uses["reusers"][0]) == PINS["uses.reusers"]
    assert uses["reusers"][0]["shared_bytes"] == reuser.shared_bytes

    from prov.model import ProvDocument

    path = tmp_path / "frozen.json"
    dlv("--repo", root, "prov", frozen, "--format", "json", "-o", str(path))
    doc = ProvDocument.deserialize(content=path.read_text(), format="json")
    derivations = [r for r in doc.get_records() if type(r).__name__ == "ProvDerivation"]
    assert len(derivations) == 1
    provn = dlv("--repo", root, "prov", frozen, "--format", "provn").output
    assert provn.startswith("document")
    assert "wasAssociatedWith(" in provn
    bad = dlv("--repo", root, "segment", "--from", base, "--to", frozen, "--exclude", "x", ok=False)
    assert bad.exit_code == 1
    assert bad.output.count("\n") == 1
