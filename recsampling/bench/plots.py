"""The suite's PNGs: the headline metric by method, learning curves, training speed, false negatives.

Matplotlib runs headless (``Agg``); every function returns the paths it wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

__all__ = ["suite_plots", "false_negative_plots"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def suite_plots(table, curves: dict, out: Path, metrics: Mapping[str, Sequence[str]], grid: Mapping[str, Sequence[str]],
                peer_style: Callable[[str, str], str | None]) -> list[str]:
    """Per data set the headline metric by method and its learning curves, then the training speed.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`recsampling.bench.report.summary`'s.
    curves : dict
        ``{dataset: {"model + method": [curve per seed]}}``, a curve being ``[[step, value], ...]``.
    out : Path
        The folder written to.
    metrics : mapping
        Data set -> its figures (the first is the headline).
    grid : mapping
        Model -> its methods (colours follow this order).
    peer_style : callable
        ``(model, method) -> linestyle`` of a peer's curve (drawn in black in every panel), None
        for ours (one panel per model of ours).
    """
    plt = _pyplot()
    paths = []
    for d, g in table.groupby("dataset", sort=False):
        head = metrics[d][0]
        g = g.sort_values(head)
        labels = (g["model"] + " + " + g["method"]).tolist()
        fig, ax = plt.subplots(figsize=(7, 0.32 * len(g) + 1.2))
        ax.barh(labels, g[head], xerr=g[head + "_se"].fillna(0), color="tab:blue", alpha=0.8, capsize=2)
        ax.set_xlabel(f"{head} (mean ± s.e. over seeds)")
        ax.set_title(f"{d}: {head} by method")
        lo = float((g[head] - g[head + "_se"].fillna(0)).min())
        ax.set_xlim(left=max(0.0, lo - 0.1 * (float(g[head].max()) - lo + 1e-9)))
        fig.tight_layout()
        p = out / f"{d}_{head.replace('@', '_at_')}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        paths.append(str(p))

    colors = plt.get_cmap("tab10")
    for d in table["dataset"].unique():
        head = metrics[d][0]
        rows = table.loc[table["dataset"] == d, ["model", "method"]].itertuples(index=False)
        is_peer = {}
        for model, method in rows:
            is_peer[model] = is_peer.get(model, True) and peer_style(model, method) is not None
        # one panel per model of ours (the peers' curves drawn in each), or one of the peers alone
        families = [m for m, p in is_peer.items() if not p] or [m for m, p in is_peer.items() if p][:1]
        fig, axes = plt.subplots(1, len(families), figsize=(6 * len(families), 4.5), sharey=True, squeeze=False)
        for ax, family in zip(axes[0], families):
            for label, per_seed in curves.get(d, {}).items():
                model, _, method = label.partition(" + ")
                style = peer_style(model, method)
                if model != family and style is None:
                    continue
                # x: the fraction of the fit done, so 10 epochs and 100 peer iterations share an axis
                points = [{x / max(p[0] for p in c): y for x, y in c} for c in per_seed if c]
                xs = sorted({x for c in points for x in c})
                ys = [float(np.mean([c[x] for c in points if x in c])) for x in xs]
                i = list(grid[model]).index(method) if method in grid.get(model, ()) else 0
                ax.plot(xs, ys, marker=".", label=label, linestyle="-" if style is None else style,
                        color=colors(i % 10) if style is None else "black", alpha=0.9 if style is None else 0.6)
            ax.set_xlabel("fraction of training done (epochs; implicit: iterations)")
            ax.set_title(f"{d}: {family}")
            ax.legend(fontsize=7)
        axes[0][0].set_ylabel(f"{head} on the test set (mean over seeds)")
        fig.tight_layout()
        p = out / f"{d}_curve.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        paths.append(str(p))

    fig, ax = plt.subplots(figsize=(8, 0.25 * len(table) + 1.5))
    s = table.sort_values(["dataset", "samples_per_s"])
    labels = (s["dataset"] + ": " + s["model"] + " + " + s["method"]).tolist()
    ax.barh(labels, s["samples_per_s"], xerr=s["samples_per_s_se"].fillna(0), color="tab:green", alpha=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("training samples per second (log scale)")
    ax.set_title("training speed")
    fig.tight_layout()
    p = out / "speed.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(str(p))
    return paths


def false_negative_plots(recs: Sequence[dict], out: Path, metrics: Mapping[str, Sequence[str]]) -> list[str]:
    """Per data set with false-negative curves: the share per epoch and the headline per epoch, by method."""
    plt = _pyplot()
    paths = []
    for d in dict.fromkeys(r["dataset"] for r in recs if r.get("false_negative_curve")):
        runs: dict = {}
        for r in recs:
            if r["dataset"] == d and r.get("false_negative_curve"):
                runs.setdefault(f"{r['model']} + {r['method']}", []).append((r["false_negative_curve"], r["curve"]))
        head = metrics[d][0]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(14, 5))
        colors = plt.get_cmap("tab20")
        for n, (label, per_seed) in enumerate(runs.items()):
            for ax, which in ((a1, 0), (a2, 1)):
                pts = [dict((int(e), float(v)) for e, v in run[which]) for run in per_seed]
                xs = sorted({x for p in pts for x in p})
                ys = [float(np.mean([p[x] for p in pts if x in p])) for x in xs]
                ax.plot(xs, ys, marker=".", label=label, color=colors(n % 20))
        a1.set_xlabel("epoch")
        a1.set_ylabel("share of drawn negatives truly relevant (mean over seeds)")
        a1.set_title(f"{d}: false negatives drawn")
        a2.set_xlabel("epoch")
        a2.set_ylabel(f"{head} (mean over seeds)")
        a2.set_title(f"{d}: {head}")
        a2.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
        fig.tight_layout()
        p = out / f"{d}_false_negatives.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        paths.append(str(p))
    return paths
