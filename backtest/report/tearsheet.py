"""Tear sheet of a saved run (PNG per figure, one multi-page PDF, one self-contained HTML page) and
side-by-side comparison of runs.

Reads only the run folder (``Result.load``), never the engine. Every file is written to a temporary
name and renamed into place, so a reader sees either the previous file or the complete new one.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.backends.backend_pdf import PdfPages

from .. import metrics as M
from ..atomic import tmp_name, write_text
from ..errors import ConfigError
from ..result import Result
from ..trades import round_trips
from . import figures as F

FORMATS = ("png", "pdf", "html")
REPORT_DIR = "report"
PNG_DPI = 150

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;max-width:1240px;
margin:24px auto;padding:0 20px;line-height:1.4}
h1{font-size:24px;margin:0 0 4px}h2{font-size:17px;color:#1f4e79;border-bottom:1px solid #1f4e79;
padding-bottom:3px;margin-top:30px}.sub{color:#555;font-size:13px}.params{color:#777;font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:10px 28px}
table{border-collapse:collapse;font-size:12.5px;width:100%}th,td{padding:3px 8px;text-align:right;
border-bottom:1px solid #e6e6e6;white-space:nowrap}th:first-child,td:first-child{text-align:left}
thead th{background:#f3f6f9;border-bottom:1px solid #bbb}caption{text-align:left;font-weight:600;
color:#1f4e79;padding:6px 0}td.num{font-family:ui-monospace,Menlo,Consolas,monospace}
tr.liq td{color:#7b1fa2}.neg{color:#c62828}.pos{color:#2e7d32}figure{margin:18px 0}
figure img{width:100%;height:auto;border:1px solid #eee}figcaption{font-size:12px;color:#666}
details{margin-top:12px;font-size:12.5px}.note{font-size:11.5px;color:#777}
"""


def _parse_formats(formats) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = [f for f in formats.replace(" ", "").split(",") if f]
    formats = tuple(dict.fromkeys(str(f).lower().lstrip(".") for f in formats))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError(f"unknown report format(s) {bad or formats!r}: choose from {', '.join(FORMATS)}")
    return formats


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = tmp_name(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI, metadata={"Software": "cascade-backtest"})
    return buf.getvalue()


def _with_trades(result: Result) -> Result:
    """The result with a round-trip trades table (computed from the fills when absent)."""
    tr = result.tables.get("trades")
    if not isinstance(tr, pl.DataFrame) or "return_pct" not in tr.columns:
        fills = result.tables.get("fills")
        tables = dict(result.tables)
        tables["trades"] = round_trips(fills if isinstance(fills, pl.DataFrame) else pl.DataFrame())
        result = Result(result.manifest, tables)
    return result


# --------------------------------------------------------------------------------------------
# HTML pieces
def _e(x) -> str:
    return html.escape(str(x))


def _ts(ts_ns) -> str:
    if ts_ns is None:
        return ""
    return datetime.fromtimestamp(int(ts_ns) / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def metrics_html(m: dict, ccy: str = "") -> str:
    """The headline metrics as four small HTML tables in a grid."""
    parts = ['<div class="grid">']
    for title, rows in F.metric_sections(m, ccy):
        parts.append(f"<table><caption>{_e(title)}</caption><tbody>")
        for label, value in rows:
            cls = " neg" if value.startswith(("-", "−")) else ""
            parts.append(f'<tr><td>{_e(label)}</td><td class="num{cls}">{_e(value)}</td></tr>')
        parts.append("</tbody></table>")
    parts.append("</div>")
    return "".join(parts)


def _raw_value(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        return f"{v:,.6g}" if abs(v) < 1e6 else f"{v:,.0f}"
    return str(v)


def all_metrics_html(m: dict) -> str:
    rows = "".join(f"<tr><td>{_e(k)}</td><td class='num'>{_e(_raw_value(v))}</td></tr>"
                   for k, v in m.items())
    return (f"<details><summary>All metrics ({len(m)}) as computed</summary><table><tbody>{rows}"
            "</tbody></table></details>")


def rejects_html(rejects: dict[str, int]) -> str:
    """Rejected orders by reason: a small table (or one line when there were none)."""
    n = sum(rejects.values())
    if not n:
        return "<h2 id='rejects'>Rejected orders</h2><p>none</p>"
    rows = "".join(f"<tr><td>{_e(k)}</td><td class='num'>{v:,}</td></tr>" for k, v in rejects.items())
    return (f"<h2 id='rejects'>Rejected orders ({n:,})</h2><table><thead><tr><th>reason</th>"
            f"<th>orders</th></tr></thead><tbody>{rows}</tbody></table>")


def trades_html(trades: pl.DataFrame, n: int = 50, ccy: str = "") -> str:
    """The first ``n`` round trips as an HTML table (liquidated trades highlighted)."""
    if trades.height == 0:
        return "<p class='note'>No trades in this run.</p>"
    head = ["#", "Symbol", "Side", "Entry (UTC)", "Exit (UTC)", "Qty", "Entry price", "Exit price",
            f"Gross PnL {ccy}".strip(), "Fees", "Net PnL", "Return", "Fills", "Liquidated"]
    out = ["<table><thead><tr>", "".join(f"<th>{_e(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for i, r in enumerate(trades.head(n).iter_rows(named=True), 1):
        net = r["net_pnl"]
        cls = "neg" if net < 0 else "pos"
        exit_px = "" if r["exit_price"] is None else f"{r['exit_price']:,.2f}"
        ret = r["return_pct"]
        cells = [str(i), _e(r["symbol"]), "Long" if r["direction"] > 0 else "Short",
                 _ts(r["entry_ts_ns"]), "open" if r["open"] else _ts(r["exit_ts_ns"]),
                 f"{r['qty']:,.6g}", f"{r['entry_price']:,.2f}", exit_px,
                 f"{r['gross_pnl']:,.2f}", f"{r['fees']:,.2f}",
                 f"<span class='{cls}'>{net:,.2f}</span>",
                 f"<span class='{cls}'>{ret:+.2%}</span>" if ret is not None and np.isfinite(ret) else "",
                 str(r["n_fills"]), "yes" if r["liquidated"] else ""]
        tr_cls = " class='liq'" if r["liquidated"] else ""
        out.append(f"<tr{tr_cls}>" + "".join(
            f"<td class='num'>{c}</td>" if j >= 5 else f"<td>{c}</td>" for j, c in enumerate(cells))
            + "</tr>")
    out.append("</tbody></table>")
    if trades.height > n:
        out.append(f"<p class='note'>First {n} of {trades.height:,} trades.</p>")
    return "".join(out)


def _caption(fn) -> str:
    doc = (fn.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(doc.split())


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'><title>{_e(title)}"
            f"</title><style>{CSS}</style></head><body>{body}</body></html>")


# --------------------------------------------------------------------------------------------
def write_report(run_dir, *, formats: Sequence[str] | str = FORMATS, max_trades: int = 50) -> dict[str, Path]:
    """Draw every figure of a saved run into ``RUN_DIR/report/``.

    ``formats``: any of "png" (one ``<figure>.png`` each, plus ``summary.png``), "pdf"
    (``report.pdf``: a summary page then one page per figure) and "html" (``report.html``, one
    self-contained page: figures as base64 PNG, metrics and the first ``max_trades`` trades).
    Returns ``{"png:<figure>": path, ..., "pdf": path, "html": path}`` for what was written.
    """
    formats = _parse_formats(formats)
    run_dir = Path(run_dir)
    result = _with_trades(Result.load(run_dir))
    metrics = M.compute_metrics(result)
    out = run_dir / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    ccy = str(result.manifest.get("settle_currency") or "")

    pdf_tmp = tmp_name(out / "report.pdf") if "pdf" in formats else None
    pdf = PdfPages(pdf_tmp, metadata={"Title": f"Backtest report {result.manifest.get('run_id', '')}",
                                      "Creator": "cascade-backtest"}) if pdf_tmp else None
    images: list[tuple[str, str, str]] = []
    try:
        pages = [("summary", lambda r: F.fig_summary(r, metrics), F.fig_summary)]
        pages += [(name, fn, fn) for name, fn in F.FIGURES.items()]
        for name, make, doc_fn in pages:
            fig = make(result)
            if "png" in formats or ("html" in formats and name != "summary"):
                png = _png_bytes(fig)
                if "png" in formats:
                    path = out / f"{name}.png"
                    _write_bytes(path, png)
                    written[f"png:{name}"] = path
                if "html" in formats and name != "summary":
                    images.append((name, _caption(doc_fn), base64.b64encode(png).decode("ascii")))
            if pdf is not None:
                pdf.savefig(fig)
            del fig
        if pdf is not None:
            pdf.close()
            pdf = None
            os.replace(pdf_tmp, out / "report.pdf")
            written["pdf"] = out / "report.pdf"
    finally:
        if pdf is not None:
            pdf.close()
        if pdf_tmp is not None:
            pdf_tmp.unlink(missing_ok=True)

    if "html" in formats:
        path = out / "report.html"
        write_text(path, report_html(result, metrics, images, max_trades=max_trades, ccy=ccy))
        written["html"] = path
    return written


def report_html(result: Result, metrics: dict, images: Iterable[tuple[str, str, str]], *,
                max_trades: int = 50, ccy: str = "") -> str:
    """The self-contained HTML page (images: (name, caption, base64 PNG))."""
    man = result.manifest
    strat = man.get("strategy") or {}
    params = ", ".join(f"{k}={v}" for k, v in (strat.get("params") or {}).items())
    title = f"Backtest report: {strat.get('name', 'strategy')}"
    body = [f"<h1>{_e(title)}</h1>",
            f"<div class='sub'>run <b>{_e(man.get('run_id', 'n/a'))}</b> · symbols "
            f"{_e(', '.join(man.get('symbols') or []))} · {_ts(metrics.get('start_ts_ns'))} → "
            f"{_ts(metrics.get('end_ts_ns'))} UTC · initial balance "
            f"{F.money(metrics.get('initial_equity'))} {_e(ccy)}</div>"]
    if params:
        body.append(f"<div class='params'>parameters: {_e(params)}</div>")
    body += ["<h2 id='metrics'>Metrics</h2>", metrics_html(metrics, ccy), all_metrics_html(metrics),
             "<p class='note'>Return statistics use equity resampled to a UTC calendar grid "
             f"({_e(metrics.get('return_freq'))}), a 365-day year and a zero risk-free rate; drawdowns"
             " use the raw equity samples. Formulas: docs/metrics.md.</p>",
             rejects_html(result.rejects), "<h2 id='figures'>Figures</h2>"]
    for name, caption, b64 in images:
        body.append(f"<figure id='fig-{_e(name)}'><img alt='{_e(name)}' "
                    f"src='data:image/png;base64,{b64}'><figcaption>{_e(caption)}</figcaption></figure>")
    trades = result.tables.get("trades")
    trades = trades if isinstance(trades, pl.DataFrame) else pl.DataFrame()
    body += [f"<h2 id='trades'>Trades ({trades.height:,})</h2>", trades_html(trades, max_trades, ccy)]
    return _page(title, "\n".join(body))


# --------------------------------------------------------------------------------------------
COMPARE_METRICS = (
    "total_return", "annual_return", "annual_volatility", "sharpe", "sortino", "calmar",
    "max_drawdown", "max_drawdown_duration_s", "time_under_water", "n_trades", "win_rate",
    "profit_factor", "expectancy", "exposure", "turnover", "fees", "slippage_cost", "funding_net",
    "n_liquidations", "liquidation_loss", "min_liq_distance", "max_leverage", "final_equity",
)
_PCT = {"total_return", "annual_return", "annual_volatility", "max_drawdown", "time_under_water",
        "win_rate", "exposure", "min_liq_distance"}


def _labels(results: list[Result], run_dirs: list[Path], given: Sequence[str] | None = None) -> list[str]:
    """`given`, else the strategy name and the parameters that differ between the runs
    ('Reference entry=61500'); runs that still look alike get their folder name appended."""
    if given:
        if len(given) != len(results):
            raise ConfigError(f"--label: {len(given)} label(s) for {len(results)} run(s); give one per run")
        labels = [str(g) for g in given]
    else:
        strategies = [r.manifest.get("strategy") or {} for r in results]
        params = [s.get("params") or {} for s in strategies]
        keys = list(dict.fromkeys(k for p in params for k in p))
        differ = [k for k in keys if len({json.dumps(p[k], sort_keys=True, default=str)
                                          for p in params if k in p}) > 1]
        labels = [" ".join([str(s.get("name") or d.name), *(f"{k}={p.get(k)}" for k in differ if k in p)])
                  for s, p, d in zip(strategies, params, run_dirs)]
        labels = [f"{lab} ({d.name})" if labels.count(lab) > 1 else lab for lab, d in zip(labels, run_dirs)]
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
        out.append(lab if seen[lab] == 1 else f"{lab} ({seen[lab]})")
    return out


def _fmt_cell(key: str, v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, float) and math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if key in _PCT:
        return f"{v:+.2%}" if key not in ("win_rate", "exposure", "time_under_water",
                                           "min_liq_distance", "annual_volatility") else f"{v:.2%}"
    if key.endswith("_s"):
        return F.duration(v)
    if key.startswith("n_"):
        return f"{int(v):,}"
    return f"{v:,.2f}"


def compare_runs(run_dirs: Sequence, out_dir, *, metrics: Sequence[str] = COMPARE_METRICS,
                 labels: Sequence[str] | None = None) -> dict:
    """Overlay the equity curves (each divided by its initial equity) and tabulate metrics.

    Runs are labelled by `labels`, else by strategy name and the parameters that differ.

    Writes ``compare.png``, ``compare.html`` and ``compare.md`` into ``out_dir`` and returns
    ``{"table": DataFrame (metric, one Float64 column per run), "figure": Figure, "png": path,
    "html": path, "md": path}``.
    """
    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise ConfigError("compare needs at least one run folder")
    results = [Result.load(d) for d in run_dirs]
    labels = _labels(results, run_dirs, labels)
    mets = [M.compute_metrics(r) for r in results]
    data = {"metric": list(metrics)}
    for lab, m in zip(labels, mets):
        col = []
        for k in metrics:
            v = m.get(k)
            col.append(float(v) if isinstance(v, (int, float)) and v is not None else None)
        data[lab] = col
    table = pl.DataFrame(data, schema={"metric": pl.Utf8, **{lab: pl.Float64 for lab in labels}})

    fig = F.fig_compare(results, labels)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = _png_bytes(fig)
    _write_bytes(out_dir / "compare.png", png)

    md = ["| metric | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for k in metrics:
        md.append(f"| {k} | " + " | ".join(_fmt_cell(k, m.get(k)) for m in mets) + " |")
    write_text(out_dir / "compare.md", "\n".join(md) + "\n")

    rows = "".join(f"<tr><td>{_e(k)}</td>" + "".join(
        f"<td class='num'>{_e(_fmt_cell(k, m.get(k)))}</td>" for m in mets) + "</tr>" for k in metrics)
    head = "<tr><th>metric</th>" + "".join(f"<th>{_e(lab)}</th>" for lab in labels) + "</tr>"
    dirs = "".join(f"<li><b>{_e(lab)}</b>: {_e(d)}</li>" for lab, d in zip(labels, run_dirs))
    body = (f"<h1>Comparison of {len(labels)} runs</h1><ul class='sub'>{dirs}</ul>"
            f"<figure><img alt='equity comparison' src='data:image/png;base64,"
            f"{base64.b64encode(png).decode('ascii')}'></figure>"
            f"<h2>Metrics</h2><table><thead>{head}</thead><tbody>{rows}</tbody></table>")
    write_text(out_dir / "compare.html", _page("Run comparison", body))
    return {"table": table, "figure": fig, "png": out_dir / "compare.png",
            "html": out_dir / "compare.html", "md": out_dir / "compare.md"}
