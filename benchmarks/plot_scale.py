"""Charts of the scale suite: `python benchmarks/plot_scale.py scale.json [--out docs/perf]`.

Reads the JSON that `benchmarks/run.py --suite scale --json` printed (other suites' lines are skipped) and
writes latency_vs_size.png, recall_vs_size.png and recall_latency_tradeoff.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

LATENCY_GOAL_MS = 15.0
RECALL_GOAL = 0.95
MARKERS = ("o", "s", "^", "D")


def read_scale(path: Path) -> dict[str, Any]:
    """The scale suite's object from a file of one JSON object per line."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            result = json.loads(line)
            if result.get("suite") == "scale":
                return dict(result)
    raise SystemExit(f"{path} holds no scale suite result; make one with `benchmarks/run.py --suite scale --json`")


def plot(result: dict[str, Any], out: Path) -> list[Path]:
    """Write the three charts into ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    kinds = list(dict.fromkeys(r["kind"] for r in result["results"]))
    series = {k: sorted((r for r in result["results"] if r["kind"] == k), key=lambda r: r["size"]) for k in kinds}
    title = f"{result['data']['dim']}-d {result['data']['source']}, {result['machine']['cpus']} cores"
    written = []

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for kind, rows in series.items():
        sizes = [r["size"] for r in rows]
        (line,) = ax.plot(sizes, [r["p50_ms"] for r in rows], marker="o", label=_label(kind, result["index_settings"]))
        ax.plot(sizes, [r["p95_ms"] for r in rows], linestyle="--", color=line.get_color())
    ax.axhline(LATENCY_GOAL_MS, color="grey", linewidth=0.8, label=f"goal {LATENCY_GOAL_MS:g} ms")
    ax.set(xscale="log", yscale="log", xlabel="chunks", ylabel="ms, index part (solid p50, dashed p95)", title=title)
    ax.legend(fontsize="small")
    written.append(_save(fig, out / "latency_vs_size.png"))

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    lowest = min(r["recall_at_10"] for r in result["results"])
    for (kind, rows), marker in zip(series.items(), MARKERS, strict=False):
        ax.plot(
            [r["size"] for r in rows],
            [r["recall_at_10"] for r in rows],
            marker=marker,
            fillstyle="none",  # lines at 1.0 overlap: the markers still tell them apart
            label=_label(kind, result["index_settings"]),
        )
    ax.axhline(RECALL_GOAL, color="grey", linewidth=0.8, label=f"goal {RECALL_GOAL:g}")
    ax.set(xscale="log", xlabel="chunks", ylabel="recall@10 vs exact search", title=title)
    ax.set_ylim(min(0.9, lowest - 0.02), 1.005)
    ax.legend(fontsize="small")
    written.append(_save(fig, out / "recall_vs_size.png"))

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    sweep = result["sweep"]
    for kind, below in (("hnsw", False), ("ivf", True)):  # values written above one curve, below the other
        points = sweep.get(kind) or []
        if not points:
            continue
        name = next(k for k in points[0] if k not in ("p50_ms", "p95_ms", "recall_at_10"))
        ax.plot(
            [p["p50_ms"] for p in points], [p["recall_at_10"] for p in points], marker="o", label=f"{kind} ({name})"
        )
        for p in points:
            ax.annotate(
                str(p[name]),
                (p["p50_ms"], p["recall_at_10"]),
                fontsize="x-small",
                xytext=(0, -10 if below else 5),
                textcoords="offset points",
            )
    ax.axhline(RECALL_GOAL, color="grey", linewidth=0.8)
    ax.axvline(LATENCY_GOAL_MS, color="grey", linewidth=0.8)
    ax.set(
        xscale="log",
        xlabel="p50 latency, index part (ms)",
        ylabel="recall@10",
        title=f"{sweep['size']:,} chunks: {title}",
    )
    ax.legend(fontsize="small")
    written.append(_save(fig, out / "recall_latency_tradeoff.png"))
    return written


def _label(kind: str, settings: dict[str, Any]) -> str:
    """The kind with the parameters it was measured with."""
    if kind == "hnsw":
        return f"hnsw M={settings['hnsw_m']} efC={settings['hnsw_ef_construction']} ef={settings['hnsw_ef_search']}"
    if kind == "ivf":
        return f"ivf nlist={settings['ivf_nlist'] or '4√n'} nprobe={settings['ivf_nprobe'] or '√nlist'}"
    return f"{kind} (exact)"


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="output of `benchmarks/run.py --suite scale --json`")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "perf")
    args = parser.parse_args(argv)
    written = plot(read_scale(args.results), args.out)
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    main()
