"""Ground-truth recovery across stages: one table of every stage's validation figures.

Stages that run on simulated data store how well they recovered the planted truth as variables
named ``validation_*`` (scalars, or short vectors over e.g. ``stimulus_epoch``), and their own
headline scores as scalar variables (``co_bps``, ``rate_r2``, ...). This module gathers both from
the stage outputs into one table, written as TSV and as an HTML page for the Snakemake report.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from neurodag.io.netcdf import open_dataset, provenance

MAX_VECTOR = 24  # longer per-item vectors are results, not summary figures


def collect(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Rows (stage, dataset, figure, value, description) from neurodag output files."""
    rows = []
    for path in map(Path, paths):
        ds = open_dataset(path)
        stage = provenance(ds).get("stage", path.parent.name)
        for name, var in ds.data_vars.items():
            if var.dtype.kind not in "biuf":
                continue
            is_validation = str(name).startswith("validation_")
            if var.ndim == 0 or (is_validation and var.ndim == 1 and var.size <= MAX_VECTOR):
                label = str(name).removeprefix("validation_")
                description = var.attrs.get("description", var.attrs.get("long_name", ""))
                if var.ndim == 0:
                    rows.append((stage, path.stem, label, float(var), description))
                    continue
                dim = var.dims[0]
                keys = var[dim].values if dim in var.coords else np.arange(var.size)
                for key, value in zip(keys, var.values, strict=True):
                    rows.append(
                        (stage, path.stem, f"{label} [{dim} {key}]", float(value), description)
                    )
    return pd.DataFrame(rows, columns=["stage", "dataset", "figure", "value", "description"])


def to_html(table: pd.DataFrame, title: str = "Ground-truth recovery and headline figures") -> str:
    """A self-contained HTML page of the table (the Snakemake report shows it as is)."""
    body = []
    for (stage, dataset), group in table.groupby(["stage", "dataset"], sort=False):
        body.append(f"<h2>{html.escape(stage)}: {html.escape(dataset)}</h2>")
        body.append("<table><tr><th>figure</th><th>value</th><th>meaning</th></tr>")
        for row in group.itertuples():
            body.append(
                f"<tr><td>{html.escape(row.figure)}</td><td>{row.value:.4g}</td>"
                f"<td>{html.escape(str(row.description))}</td></tr>"
            )
        body.append("</table>")
    style = (
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#eee}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
        + ("".join(body) or "<p>No stage output with validation figures.</p>")
        + "</body></html>"
    )


def landing_text(table: pd.DataFrame, paths: Iterable[str | Path], most: int = 6) -> str:
    """The Snakemake report's opening page (reStructuredText): what ran on which datasets and,
    per stage and dataset, its ground-truth recovery (the table's scalar figures, else its first
    ``most`` ones) and a link to its headline figure (the stage's first declared figure). Short
    on purpose: the report centres this page, and the whole table is a result of its own."""
    from neurodag.stages import stages

    registered = stages()
    datasets: dict[str, str] = {}
    lines = [
        "What ran in this neurodag run, and how well each stage recovered the planted truth",
        "(the whole table: `validation.html`_, and ``results/validation.tsv``).",
        "",
    ]
    runs = []
    for path in map(Path, paths):
        meta = provenance(open_dataset(path))
        stage = meta.get("stage", path.parent.name)
        spec = (meta.get("parameters") or {}).get("dataset") or {}
        if spec:
            datasets[path.stem] = f"kind {spec.get('kind')}, format {spec.get('format')}"
        runs.append((stage, path.stem))
    for stage, name in runs:
        rows = table[(table["stage"] == stage) & (table["dataset"] == name)]
        scalars = rows[~rows["figure"].str.contains("[", regex=False)]
        shown = scalars if len(scalars) else rows.head(most)
        figures = ", ".join(f"{r.figure} {r.value:.3g}" for r in shown.itertuples())
        line = f"- **{stage}** on {name}" + (f": {figures}" if figures else "")
        if stage in registered:
            line += f" (`{name}.{registered[stage].figure_names[0]}.png`_)"
        lines.append(line)
    lines += ["", "Datasets: " + "; ".join(f"{k} ({v})" for k, v in sorted(datasets.items()))]
    return "\n".join(lines) + "\n"


def write_summary(paths: Iterable[str | Path], html_path: str | Path) -> pd.DataFrame:
    """Collect, then write ``html_path``, a TSV and the report's landing text (``.rst``) beside
    it (each atomically)."""
    import os

    paths = list(paths)
    table = collect(paths)
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    for target, text in (
        (html_path, to_html(table)),
        (html_path.with_suffix(".tsv"), table.to_csv(sep="\t", index=False)),
        (html_path.with_suffix(".rst"), landing_text(table, paths)),
    ):
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, target)
    return table


def open_truth(path: str | Path, variable: str, stimulus: str | None = None):
    """The ground truth holding ``variable``: the root of ``truth.nc``, or, for a simulated Allen
    session (one group per planted piece, named by its stimulus), the group ``stimulus``."""
    from neurodag.errors import InputError

    truth = open_dataset(path)
    if variable not in truth and stimulus:
        truth = open_dataset(path, group=str(stimulus))
    if variable not in truth:
        where = f"group {stimulus}" if stimulus else "the file"
        raise InputError(path, variable, f"missing from {where}")
    return truth
