"""Parts of report.html: HTML fragments, inline CSS, and figures rendered to PNG bytes."""
from __future__ import annotations

import base64
import html
import io
import math
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

# Kept short and system-only: the page must look the same offline, with no web fonts.
CSS = """
:root { --fg: #1f2933; --muted: #616e7c; --line: #d9e2ec; --accent: #2f6fb2;
        --ok: #1f7a3f; --bad: #b42318; --bg: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
header { background: #fff; border-bottom: 1px solid var(--line); padding: 1.2rem 2rem 0.6rem; }
header h1 { margin: 0 0 0.2rem; font-size: 1.5rem; }
header p { margin: 0.1rem 0; color: var(--muted); }
nav { margin-top: 0.6rem; display: flex; flex-wrap: wrap; gap: 0.3rem 1rem; }
nav a { color: var(--accent); text-decoration: none; font-size: 0.92rem; }
main { max-width: 1100px; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px;
          padding: 0.6rem 1.4rem 1.2rem; margin: 1.2rem 0; }
h2 { font-size: 1.2rem; border-bottom: 1px solid var(--line); padding-bottom: 0.3rem; }
h3 { font-size: 1rem; margin: 1.2rem 0 0.4rem; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { text-align: left; padding: 0.25rem 0.8rem 0.25rem 0; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.selected td { background: #eaf2fb; font-weight: 600; }
code, pre, .key { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
                  font-size: 0.85rem; }
.key { overflow-wrap: anywhere; }
pre { background: var(--bg); border: 1px solid var(--line); padding: 0.6rem; overflow-x: auto; }
figure { margin: 0.8rem 0; }
img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 0.85rem; }
.note { color: var(--muted); font-style: italic; }
.ok { color: var(--ok); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
details summary { cursor: pointer; color: var(--accent); }
"""


def esc(value: Any) -> str:
    """``value`` as HTML text."""
    return html.escape(str(value))


def number(value: Any, digits: int = 4) -> str:
    """A number for people: integers grouped by thousands, floats to ``digits`` decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()
                                  and abs(value) >= 1000):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return str(value)


def percent(value: float | None) -> str:
    """A share in [0, 1] as a percentage with two decimals."""
    return "–" if value is None else f"{100.0 * float(value):.2f} %"


def cell(value: Any) -> str:
    """A table cell: numbers right-aligned and formatted, text escaped; ``Raw`` kept as is."""
    if isinstance(value, Raw):
        return f"<td>{value}</td>"
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td class="num">{esc(number(value))}</td>'
    return f"<td>{esc(value)}</td>"


class Raw(str):
    """HTML that is inserted as it is (already escaped)."""


def table(rows: Iterable[Sequence[Any]], header: Sequence[str] | None = None, *,
          highlight: Callable[[Sequence[Any]], bool] | None = None) -> str:
    """An HTML table; rows for which ``highlight`` is true are marked as selected."""
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        mark = ' class="selected"' if highlight is not None and highlight(row) else ""
        out.append(f"<tr{mark}>" + "".join(cell(v) for v in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def pairs(items: Iterable[tuple[str, Any]]) -> str:
    """A two-column table of names and values."""
    return "<table>" + "".join(f"<tr><th>{esc(k)}</th>{cell(v)}</tr>" for k, v in items) + "</table>"


def key(text: str) -> Raw:
    """An Arch key, monospaced and wrapped anywhere."""
    return Raw(f'<span class="key">{esc(text)}</span>')


def code(text: str) -> Raw:
    return Raw(f"<code>{esc(text)}</code>")


def note(text: str) -> str:
    """A one-line remark (HTML allowed in ``text``)."""
    return f'<p class="note">{text}</p>'


def missing(what: str, command: str) -> str:
    """The one line shown where an input is missing: what, and the command that produces it."""
    return note(f"{esc(what)}: run <code>{esc(command)}</code>.")


def image(png: bytes, caption: str) -> str:
    """A PNG embedded as a data URI, with its caption."""
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def figure(render: Callable[[], bytes], caption: str) -> str:
    """``image(render(), caption)``; a figure whose data cannot be drawn becomes a one-line
    note, so that the rest of its section still shows."""
    try:
        return image(render(), caption)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        return note(f"{esc(caption)}: not drawn ({esc(exc)})")


def section(ident: str, title: str, body: str) -> str:
    return f'<section id="{ident}"><h2>{esc(title)}</h2>\n{body}\n</section>'


def page(title: str, lines: Sequence[str], sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document: a header with ``lines`` and a contents bar, then the sections
    given as ``(id, title, body)``."""
    nav = "".join(f'<a href="#{ident}">{esc(name)}</a>' for ident, name, _ in sections)
    head = "".join(f"<p>{line}</p>" for line in lines)
    body = "\n".join(section(*s) for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body><header>"
            f"<h1>{esc(title)}</h1>{head}<nav>{nav}</nav></header>\n<main>\n{body}\n</main>"
            f"</body></html>\n")


def figure_png(fig) -> bytes:
    """A matplotlib figure rendered by Agg to PNG bytes, in memory (no file to write)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()


def drawn_png(draw: Callable[[Path], None]) -> bytes:
    """The PNG that ``draw(path)`` writes, drawn in a temporary directory (never the run's)."""
    with tempfile.TemporaryDirectory(prefix="hwnas-report-") as tmp:
        path = Path(tmp) / "figure.png"
        draw(path)
        return path.read_bytes()


#: How the columns of training logs are labelled and grouped into panels.
_PANELS = (("Loss", ("loss", "arch_loss"), "Loss"),
           ("Accuracy", ("train_accuracy", "val_accuracy", "test_accuracy"), "Accuracy"),
           ("Learning rate", ("lr",), "Learning rate"))
_SKIP = {"epoch", "seconds", "step"}


def curves(log: pd.DataFrame, title: str) -> bytes:
    """Training curves against epoch: loss, accuracy, learning rate, and one panel for
    every other numeric column (say, the expected cost under a regularizer)."""
    import seaborn as sns
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    numeric = [c for c in log.columns
               if c not in _SKIP and pd.api.types.is_numeric_dtype(log[c])]
    panels = [(name, [c for c in cols if c in numeric], label)
              for name, cols, label in _PANELS]
    grouped = {c for _, cols, _ in panels for c in cols}
    panels = [p for p in panels if p[1]]
    panels += [(c.replace("_", " ").capitalize(), [c], c) for c in numeric if c not in grouped]
    if not panels:
        raise ValueError(f"no numeric column to plot besides {sorted(_SKIP)}")
    columns = min(len(panels), 4)
    rows = -(-len(panels) // columns)
    x = log["epoch"] if "epoch" in log else pd.Series(range(1, len(log) + 1))
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(3.6 * columns, 2.9 * rows), layout="constrained")
        axes = fig.subplots(rows, columns, squeeze=False).ravel()
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        for ax, (name, cols, label) in zip(axes, panels):
            for col in cols:
                ax.plot(x, log[col], marker="o", markersize=3, linewidth=1.4,
                        label=col.replace("_", " "))
            ax.set_title(name)
            ax.set_xlabel("Epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(label if len(cols) > 1 else name)
            if len(cols) > 1:
                ax.legend(fontsize="small")
        fig.suptitle(title)
    return figure_png(fig)


class Unreadable(Exception):
    """An input file of the report exists but cannot be read; its section says so."""


def read_json(path: Path) -> Any:
    """The JSON in ``path``; None when it does not exist.

    Raises:
        Unreadable: it exists but is no valid JSON.
    """
    import json
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise Unreadable(f"{path.name} is unreadable ({exc})") from None


def read_csv(path: Path) -> pd.DataFrame | None:
    """The table in ``path``; None when it does not exist.

    Raises:
        Unreadable: it exists but is no CSV table.
    """
    if not path.exists():
        return None
    try:
        return pd.read_csv(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise Unreadable(f"{path.name} is unreadable ({exc})") from None
