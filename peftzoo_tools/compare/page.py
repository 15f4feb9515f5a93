"""The static comparison page: OUT/index.html and OUT/plots/*.png, viewable from disk (no server).

The page is built in a temporary folder beside OUT and moved into place when complete, so OUT is
either the previous page or the new one, never half of each.
"""

from __future__ import annotations

import html
import os
import shutil
import tempfile
from pathlib import Path

from peftzoo_engine.rundir import atomic_write, now
from peftzoo_tools.compare import plots, table
from peftzoo_tools.compare.runs import Run, Sweep
from recipes import preflight
from recipes.errors import RecipeError

MARKER = "<!-- peftzoo compare page -->"
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;font-size:13px}\n"
    "td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}th{background:#f3f3f3}"
    "section{margin:1.5em 0;padding-top:.5em;\n"
    "border-top:2px solid #ddd}img{margin:4px;border:1px solid #eee}code{background:#f6f6f6;padding:1px 3px}"
    ".plots{display:flex;flex-wrap:wrap}"
)


def _anchor(index: int) -> str:
    """A run section's id: by position, since run names may hold spaces or HTML characters (not valid in an id)."""
    return f"run-{index:03d}"


def _table_html(header: list[str], body: list[list[str]], anchors: dict[str, str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = []
    for row in body:
        cells = [f'<a href="#{anchors[row[0]]}">{html.escape(row[0])}</a>' if anchors else html.escape(row[0])]
        cells += [html.escape(c) for c in row[1:]]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _images(folder: Path, stem: str, pngs: dict[str, bytes | None]) -> str:
    tags = []
    for kind, png in pngs.items():
        if png is None:
            continue
        name = f"plots/{stem}-{kind}.png"
        (folder / name).write_bytes(png)
        tags.append(f'<img src="{html.escape(name)}" alt="{html.escape(kind)}">')
    return f'<div class="plots">{"".join(tags)}</div>' if tags else "<p>(no metrics to plot)</p>"


def check_output(out: Path) -> Path:
    """OUT, resolved, if the page may go there: new, empty, or an earlier comparison page (replaced)."""
    preflight.writable_dir(out.expanduser().parent, "--html: the folder of")
    out = out.expanduser().resolve()
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or MARKER in _read(out / "index.html"))):
        raise RecipeError(f"{str(out)!r} exists and is not a comparison page; give a new or empty folder for --html")
    return out


def write(out: Path, runs: list[Run], sweeps: list[Sweep], metrics: list[str]) -> Path:
    """Write the page; returns the path of index.html."""
    out = check_output(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        (work / "plots").mkdir()
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'><title>peftzoo runs</title>"
            f"<style>{STYLE}</style></head><body>",
            MARKER,
            f"<h1>{len(runs)} run(s)</h1><p>written {html.escape(now())}</p>",
        ]
        header, body = table.rows(runs, metrics)
        parts.append(_table_html(header, body, anchors={run.name: _anchor(i) for i, run in enumerate(runs)}))
        for index, sweep in enumerate(sweeps):
            parts.append(_sweep_section(work, index, sweep))
        differing = table.differing_keys(runs)
        for index, run in enumerate(runs):
            parts.append(_run_section(work, index, run, differing, metrics))
        parts.append("</body></html>")
        atomic_write(work / "index.html", "\n".join(parts))
        if out.exists():
            shutil.rmtree(out)
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out / "index.html"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[:4096]
    except OSError:
        return ""


def _sweep_section(folder: Path, index: int, sweep: Sweep) -> str:
    select = sweep.data.get("select") or {"metric": "val/eeg_to_video/R@1"}
    metric = select["metric"]
    axes = [
        k
        for k, v in ((sweep.data.get("space") or {}).get("axes") or {}).items()
        if not isinstance(v, list) or len(v) > 1
    ]
    # seeds are repetitions, not a setting: their spread shows in every other plot's scatter
    pngs = {f"against-{i}": plots.against_value(sweep, key, metric) for i, key in enumerate(axes) if key != "seed"}
    pngs["curves"] = plots.curves(sweep, metric)
    from peftzoo_tools.sweep import summary

    lines = summary.table(sweep.data).splitlines()
    return (
        f"<section><h2>sweep {html.escape(sweep.path.name)}</h2><p><code>{html.escape(str(sweep.path))}</code>, "
        f"{len(sweep.data.get('trials', []))} trials, swept: {html.escape(', '.join(axes))}</p>"
        f"<pre>{html.escape(chr(10).join(lines))}</pre>{_images(folder, f'sweep{index:03d}', pngs)}</section>"
    )


def _run_section(folder: Path, index: int, run: Run, differing: list[str], metrics: list[str]) -> str:
    flat = table.flatten(run.recipe)
    keys = [[k, table._fmt(flat.get(k, ""))] for k in differing] or [["(no differing keys)", ""]]
    final = run.final()
    metric_rows = []
    for m in dict.fromkeys([*metrics, "val/eeg_to_video/R@5", "val/eeg_to_video/R@10", "val/chance_R@1"]):
        b = table.best(run, m)
        if m in final or b:
            metric_rows.append([m, table._fmt(final.get(m, "-")), f"{b[0]:.4f} (epoch {b[1]})" if b else "-"])
    pngs = {
        "r1": plots.recall(run),
        "loss": plots.losses(run),
        "lr": plots.per_step(run, "lr", "learning rate"),
        "logit_scale": plots.per_step(run, "logit_scale", "logit scale"),
    }
    return (
        f'<section id="{_anchor(index)}"><h2>{html.escape(run.name)}</h2>'
        f"<p><code>{html.escape(str(run.path))}</code>, status {html.escape(str(run.info.get('status')))}</p>"
        f"{_table_html(['key', 'value'], keys)}<br>{_table_html(['metric', 'final', 'best'], metric_rows)}"
        f"{_images(folder, f'run{index:03d}', pngs)}</section>"
    )
