"""Reports of benchmark runs: mean +- standard error over seeds, the tidy table, Markdown tables.

- :func:`mean_se` / :func:`mean_se_by`: each figure's mean and standard error over runs;
  :func:`mean_and_se` the same as ``{figure: {"mean", "se"}}``;
- :func:`ratios_to`: each method's figures divided by a baseline method's;
- :func:`method_table`: a Markdown table, one row per method, ``mean ± s.e.`` per figure
  (:func:`mean_se_text` one such cell);
- :func:`tidy`, :func:`summary`, :func:`markdown`, :func:`results_by_dataset`,
  :func:`false_negative_rates`: the suite's tables built from cell records
  (:mod:`recsampling.bench.store`), one row per cell, then per data set x model x method;
- :func:`write_section`: a script's own section of ``benchmarks/RESULTS.md``, between its markers;
  :func:`write_table` such a section holding a title, a paragraph, one table and a footnote.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

__all__ = ["mean_se", "mean_se_by", "mean_and_se", "ratios_to", "mean_se_text", "method_table", "tidy", "summary",
           "markdown", "results_by_dataset", "false_negative_rates", "write_section", "write_table", "CONFIG_COLUMNS"]


def mean_se(runs: Sequence[dict], *, suffix: str = "_se", always: bool = False) -> dict:
    """Mean and standard error over runs (e.g. seeds) of each figure of the first run.

    Parameters
    ----------
    runs : sequence of dict
        One ``{figure: number}`` per run; a None value is left out of its figure's mean.
    suffix : str
        Key suffix of the standard errors (``"ndcg@10" -> "ndcg@10_se"``).
    always : bool
        Give every figure a standard error: 0.0 for a single value, None for none. By default a
        figure with a single value has none.

    Returns
    -------
    dict
        ``{figure: mean, figure + suffix: std(ddof=1) / sqrt(n), ...}``; the mean is None when no
        run has a value.
    """
    if not runs:
        raise ValueError("mean_se needs at least one run")
    out: dict = {}
    for key in runs[0]:
        v = np.array([r[key] for r in runs if r[key] is not None], dtype=np.float64)
        out[key] = float(v.mean()) if v.size else None
        if v.size > 1:
            out[key + suffix] = float(v.std(ddof=1) / math.sqrt(v.size))
        elif always:
            out[key + suffix] = 0.0 if v.size else None
    return out


def mean_and_se(runs: Sequence[dict], *, single=None) -> dict:
    """:func:`mean_se` as ``{figure: {"mean": mean, "se": standard error}}``, a figure with a single
    value (or none) having the standard error ``single`` (e.g. None, 0.0 or NaN)."""
    ms = mean_se(runs)
    return {key: {"mean": ms[key], "se": ms.get(key + "_se", single)} for key in runs[0]}


def mean_se_by(groups: Mapping[str, Sequence[dict]], **kw) -> dict:
    """:func:`mean_se` of each group (e.g. method -> its runs over the seeds), in the groups' order."""
    return {name: mean_se(runs, **kw) for name, runs in groups.items()}


def ratios_to(summary: Mapping[str, dict], baseline: str, keys: Sequence[str], *, with_baseline: bool = True) -> dict:
    """``{"<method>/<key>": summary[method][key] / summary[baseline][key]}`` for every method and key.

    Empty when ``baseline`` is not in ``summary``; a key the baseline lacks (or has as 0 or None), or
    the method lacks (or has as None), is left out. ``with_baseline=False`` leaves out the baseline's
    own ratios (all 1).
    """
    base = summary.get(baseline)
    if base is None:
        return {}
    return {f"{m}/{k}": d[k] / base[k] for m, d in summary.items() if with_baseline or m != baseline
            for k in keys if base.get(k) and d.get(k) is not None}


def mean_se_text(d: Mapping, key: str, digits: int = 4, suffix: str = "_se") -> str:
    """``"mean ± s.e."`` of figure ``key`` of a :func:`mean_se` summary ``d``: the mean alone when it has
    no standard error, ``""`` when the figure is missing or None."""
    if d.get(key) is None:
        return ""
    se = d.get(key + suffix)
    return f"{d[key]:.{digits}f}" + (f" ± {se:.{digits}f}" if se is not None else "")


def method_table(summary: Mapping[str, dict], metrics: Sequence[str], group: str = "", digits: int = 4,
                 suffix: str = "_se", *, label: str = "method", headers: Sequence[str] | None = None) -> str:
    """A Markdown table of a :func:`mean_se_by` summary: one row per method, ``mean ± s.e.`` per figure.

    Parameters
    ----------
    summary : mapping
        Method (a row) -> ``{figure: mean, figure + suffix: se}``.
    metrics : sequence of str
        The columns.
    group : str
        A key prefix: column ``m`` reads ``"<group>/m"`` (none when empty).
    digits : int
    suffix : str
        Of the standard errors; a cell is :func:`mean_se_text`'s.
    label : str
        The heading of the row labels' column.
    headers : sequence of str, optional
        The columns' headings (default ``metrics``).
    """
    rows = [f"| {label} | " + " | ".join(metrics if headers is None else headers) + " |",
            "|---|" + "---|" * len(metrics)]
    for method, d in summary.items():
        cells = [mean_se_text(d, f"{group}/{m}" if group else m, digits, suffix) for m in metrics]
        rows.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


# ------------------------------------------------------------------------------- cell records
#: configuration columns of the tidy table (a peer's iterations / learning_rate / regularization
#: go to epochs / lr / l2)
CONFIG_COLUMNS = ("epochs", "factors", "lr", "l2", "alpha", "batch_size", "optimizer", "model_params",
                  "sampler_params", "tuned", "quick")
_RENAME = {"iterations": "epochs", "learning_rate": "lr", "regularization": "l2"}


def tidy(recs: Sequence[dict], metrics: Mapping[str, Sequence[str]], order: Callable[[dict], tuple] | None = None):
    """One row per cell record: configuration, seed, every metric, train time, samples/s.

    Parameters
    ----------
    recs : sequence of dict
        Finished cell records (``dataset``, ``model``, ``method``, ``seed``, ``config``,
        ``metrics``, ``train_s``, ``samples_per_s``, ``eval_s``, ``final_loss``, ``finished_at``).
    metrics : mapping
        Data set -> its figures; their columns come first, in this order.
    order : callable, optional
        Sort key of a record (the seed breaks ties); default the records' order.

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    if order is not None:
        recs = sorted(recs, key=lambda r: (*order(r), r["seed"]))
    metric_cols = list(dict.fromkeys(m for d in metrics for m in metrics[d]))
    metric_cols += sorted({m for r in recs for m in r["metrics"]} - set(metric_cols))
    rows = []
    for r in recs:
        cfg = {_RENAME.get(k, k): v for k, v in r["config"].items()}
        row = {"dataset": r["dataset"], "model": r["model"], "method": r["method"], "seed": r["seed"]}
        for k in CONFIG_COLUMNS:
            v = cfg.get(k)
            if isinstance(v, dict):
                v = json.dumps(v, sort_keys=True) if v else None
            row[k] = v
        row.update({m: r["metrics"].get(m) for m in metric_cols})
        row.update({"train_s": r["train_s"], "samples_per_s": r["samples_per_s"], "eval_s": r["eval_s"],
                    "final_loss": r["final_loss"], "finished_at": r["finished_at"]})
        rows.append(row)
    df = pd.DataFrame(rows).dropna(axis=1, how="all")
    for c in ("epochs", "factors", "batch_size"):
        if c in df:
            df[c] = df[c].astype("Int64")  # integers with gaps (a peer has no batch size)
    return df


def summary(df):
    """Mean and standard error (``<column>_se``, NaN for one seed) per data set x model x method of :func:`tidy`."""
    import pandas as pd

    metric_cols = [c for c in df.columns if "@" in c]
    rows = []
    for (d, m, s), g in df.groupby(["dataset", "model", "method"], sort=False):
        row = {"dataset": d, "model": m, "method": s, "n_seeds": len(g)}
        for c in metric_cols + ["train_s", "samples_per_s"]:
            v = g[c].dropna()
            if v.empty:
                continue
            row[c] = float(v.mean())
            row[c + "_se"] = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(table, header: str, metrics: Mapping[str, Sequence[str]], footnote: str = "") -> str:
    """Per data set of a :func:`summary` table: ``mean ± s.e.`` per figure, the best mean in bold."""
    lines = [header, ""]
    for d, g in table.groupby("dataset", sort=False):
        cols = [m for m in metrics[d] if m in g.columns]
        lines += [f"## {d}", "",
                  "| method | " + " | ".join(cols) + " | seeds | train s | samples/s |",
                  "|---|" + "---|" * (len(cols) + 3)]
        best = {m: g[m].max() for m in cols}
        for _, r in g.iterrows():
            cells = []
            for m in cols:
                se = r.get(m + "_se")
                txt = f"{r[m]:.4f}" + (f" ± {se:.4f}" if se == se else "")
                cells.append(f"**{txt}**" if r[m] == best[m] else txt)
            lines.append(f"| {r['model']} + {r['method']} | " + " | ".join(cells)
                         + f" | {int(r['n_seeds'])} | {r['train_s']:.2f} | {r['samples_per_s']:,.0f} |")
        lines.append("")
    if footnote:
        lines.append(footnote)
    return "\n".join(lines) + "\n"


def results_by_dataset(table, metrics: Mapping[str, Sequence[str]]) -> dict:
    """``{dataset: {"model + method": {figure: mean}}}`` of a :func:`summary` table."""
    if not len(table):
        return {}
    return {d: {f"{r['model']} + {r['method']}": {m: r.get(m) for m in metrics[d]} for _, r in g.iterrows()}
            for d, g in table.groupby("dataset", sort=False)}


def false_negative_rates(recs: Sequence[dict], dataset: str = "synthetic") -> dict:
    """``"<model>+<method>"`` -> mean over seeds of the records' last-epoch false-negative share on ``dataset``."""
    by: dict = {}
    for r in recs:
        if r.get("dataset") == dataset and r.get("false_negative_rate") is not None:
            by.setdefault(f"{r['model']}+{r['method']}", []).append(float(r["false_negative_rate"]))
    return {k: float(np.mean(v)) for k, v in by.items()}


def write_section(path: str | Path, lines: Sequence[str], begin: str, end: str) -> None:
    """Put ``lines`` (which start with ``begin`` and end with ``end``) into the Markdown file ``path``
    (e.g. ``benchmarks/RESULTS.md``), replacing the old section between those markers; appended
    when there is none (a new file starts with ``# Benchmark results``)."""
    path = Path(path)
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    section = "\n".join(lines) + "\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def write_table(path: str | Path, name: str, title: str, intro: str, header: Sequence[str],
                rows: Sequence[Sequence[str]], footer: str = "", left: int = 1) -> list[str]:
    """Write the section ``name`` of the Markdown file ``path`` (:func:`write_section`, between the
    markers ``<!-- name:begin -->`` and ``<!-- name:end -->``): ``## title``, the paragraph
    ``intro``, a table and the paragraph ``footer`` (none when empty).

    Parameters
    ----------
    path : path
        E.g. ``benchmarks/RESULTS.md``.
    name, title, intro, footer : str
    header : sequence of str
        The column names.
    rows : sequence of sequences of str
        The cells of each row (an empty cell is written ``| |``).
    left : int
        How many leading columns are left-aligned; the others (numbers) are right-aligned.

    Returns
    -------
    list of str
        The section's lines, its markers included.
    """
    def line(cells) -> str:
        return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"

    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    lines = [begin, f"## {title}", "", intro, "", line(header), "|" + "---|" * left + "---:|" * (len(header) - left),
             *map(line, rows), *(["", footer] if footer else []), end]
    write_section(path, lines, begin, end)
    return lines
