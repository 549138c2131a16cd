"""Figures of architecture learning (probabilities per edge over training) and of derived archs."""
from __future__ import annotations

import math
import os
import re

import numpy as np
import pandas as pd

from hwnas.io import atomic_write
from hwnas.arch import Arch

__all__ = ["LOG_COLUMNS", "draw_arch", "plot_arch_trajectories"]

#: The columns of an architecture-parameter log (long format, one row per edge, step and option).
LOG_COLUMNS = ("step", "epoch", "edge", "option", "prob")
#: How far the probabilities of one edge at one step may sum from 1.
SUM_TOLERANCE = 1e-3

CELL_KEY = re.compile(r"^(normal|reduce)/n(0|[1-9]\d*)/(inputs|op0|op1)$")
_CELL_PARTS = ("inputs", "op0", "op1")
_CELL_INPUTS = ("c_{k-2}", "c_{k-1}")
_CELL_OUTPUT = "c_{k}"
# A chain block with one of these options is not in the network; a cell edge with
# "zero"/"none" carries nothing ("skip" in a cell is the identity, a real edge).
_CHAIN_LEFT_OUT = frozenset({"skip", "zero"})
_CELL_LEFT_OUT = frozenset({"zero", "none"})
_INCH = 0.6  # inches per data unit in the arch drawings


def _trajectory_matrices(log: pd.DataFrame) -> dict[str, tuple[list[str], np.ndarray, np.ndarray]]:
    """Checks an architecture log and pivots it per edge.

    Returns:
        edge -> (options, steps, matrix), edges and options in order of first
        appearance, steps ascending, ``matrix[i, j]`` the probability of
        ``options[i]`` at ``steps[j]`` (NaN where that pair was not logged).
    """
    missing = [c for c in LOG_COLUMNS if c not in log.columns]
    if missing:
        raise ValueError(f"architecture log lacks column(s) {missing}; it needs "
                         f"{list(LOG_COLUMNS)}, got {list(log.columns)}")
    if log.empty:
        raise ValueError("architecture log is empty: nothing to plot")
    log = log.assign(prob=pd.to_numeric(log["prob"], errors="coerce"))
    bad = log[~log["prob"].between(0.0, 1.0)]
    if len(bad):
        row = bad.iloc[0]
        raise ValueError(f"probabilities must lie in [0, 1], got {row['prob']!r} for edge "
                         f"{row['edge']!r}, option {row['option']!r} at step {row['step']}")
    repeated = log[log.duplicated(["edge", "step", "option"])]
    if len(repeated):
        row = repeated.iloc[0]
        raise ValueError(f"edge {row['edge']!r}, option {row['option']!r} is logged twice "
                         f"at step {row['step']}")
    sums = log.groupby(["edge", "step"], sort=False)["prob"].sum()
    off = sums[(sums - 1.0).abs() > SUM_TOLERANCE]
    if len(off):
        (edge, step), total = off.index[0], off.iloc[0]
        raise ValueError(f"probabilities of edge {edge!r} at step {step} sum to {total:.6g}, "
                         f"not 1 (within {SUM_TOLERANCE}); {len(off)} such (edge, step) pairs")
    matrices = {}
    for edge, rows in log.groupby("edge", sort=False):
        options = list(pd.unique(rows["option"]))
        steps = np.sort(pd.unique(rows["step"]))
        matrix = rows.pivot(index="option", columns="step", values="prob")
        matrices[str(edge)] = (options, steps,
                               matrix.reindex(index=options, columns=steps).to_numpy(float))
    return matrices


def _bin_edges(steps: np.ndarray) -> np.ndarray:
    """Boundaries of one heat-map column per step, halfway between logged steps."""
    s = np.asarray(steps, dtype=float)
    if len(s) == 1:
        return np.array([s[0] - 0.5, s[0] + 0.5])
    mids = (s[:-1] + s[1:]) / 2
    return np.concatenate([[2 * s[0] - mids[0]], mids, [2 * s[-1] - mids[-1]]])


def plot_arch_trajectories(log: pd.DataFrame, path: str | os.PathLike[str], *,
                           title: str | None = None) -> None:
    """Draws how a gradient learner's architecture probabilities moved and saves a PNG, atomically.

    One heat map per edge (x: training step, y: option, colour: probability on
    a shared 0..1 scale), edges and options in order of first appearance;
    thin white lines mark where an epoch begins.

    Args:
        log: columns ``LOG_COLUMNS``; the probabilities of one edge at one step sum to 1.
        path: the PNG file; its directory must exist.
        title: the figure's title; ``None``: one naming the number of edges.

    Raises:
        ValueError: the log is empty, lacks a column, repeats a row, or holds a
            probability outside [0, 1] or probabilities that do not sum to 1.
    """
    matrices = _trajectory_matrices(log)
    import seaborn as sns
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    n = len(matrices)
    ncols = min(n, 4) if n <= 12 else math.ceil(math.sqrt(n)) + 1
    nrows = math.ceil(n / ncols)
    option_lists = [options for options, _, _ in matrices.values()]
    shared = all(options == option_lists[0] for options in option_lists)
    longest = max(len(str(o)) for options in option_lists for o in options)
    bounds = log.groupby("epoch")["step"].agg(["min", "max"]).sort_values("min")
    epoch_starts = (bounds["max"].to_numpy()[:-1] + bounds["min"].to_numpy()[1:]) / 2
    # Margins in inches, set by hand: constrained layout costs seconds for dozens of axes.
    label_w, panel_w = 0.06 * longest + 0.15, 2.4
    panel_h = 0.3 + 0.17 * max(len(options) for options in option_lists)
    gap_w, gap_h, left, right, top, bottom = (0.25 if shared else label_w + 0.2), 0.55, \
        label_w + 0.1, 1.1, 0.6, 0.55
    width = left + ncols * panel_w + (ncols - 1) * gap_w + right
    height = top + nrows * panel_h + (nrows - 1) * gap_h + bottom
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=shared,
                        gridspec_kw=dict(left=left / width, right=1 - right / width,
                                         top=1 - top / height, bottom=bottom / height,
                                         wspace=gap_w / panel_w, hspace=gap_h / panel_h)).ravel()
    cmap, norm = sns.color_palette("rocket_r", as_cmap=True), Normalize(0.0, 1.0)
    for k, (ax, (edge, (options, steps, matrix))) in enumerate(zip(axes, matrices.items())):
        mesh = ax.pcolormesh(_bin_edges(steps), np.arange(len(options) + 1) - 0.5,
                             np.ma.masked_invalid(matrix), cmap=cmap, norm=norm)
        for x in epoch_starts[(epoch_starts > steps[0]) & (epoch_starts < steps[-1])]:
            ax.axvline(x, color="white", linewidth=0.8)
        if not shared or k % ncols == 0:
            ax.set_yticks(range(len(options)), options, fontsize="x-small")
            ax.set_ylim(len(options) - 0.5, -0.5)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        ax.tick_params(axis="x", labelsize="x-small")
        ax.set_title(edge, fontsize="small")
    for ax in axes[n:]:
        ax.set_axis_off()
    cax = fig.add_axes((1 - (right - 0.3) / width, bottom / height, 0.15 / width,
                        1 - (top + bottom) / height))
    fig.colorbar(mesh, cax=cax, label="probability")
    fig.supxlabel("training step", fontsize="small", y=0.1 / height, va="bottom")
    fig.suptitle(title or f"Architecture probabilities of {n} edge{'s' * (n != 1)} over training",
                 y=1 - 0.15 / height, va="top")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def _chain_nodes(arch: Arch) -> list[tuple[str, str, str, float | None]]:
    """The chain from input to logits as (name, option, kind, shade).

    ``kind`` is ``io``, ``fixed`` (stem, head), ``block`` or ``left_out``;
    ``shade`` ranks a block's cost (kernel^2 x expansion, on a log scale)
    among the arch's blocks in 0..1, ``None`` where the option names no kernel.
    """
    costs = {}
    for name, option in arch.items():
        kernel, expansion = re.search(r"_k(\d+)", option), re.search(r"_e(\d+)", option)
        if option not in _CHAIN_LEFT_OUT and kernel:
            costs[name] = math.log(int(kernel[1]) ** 2 * (int(expansion[1]) if expansion else 1))
    low, high = min(costs.values(), default=0.0), max(costs.values(), default=0.0)
    nodes = [("input", "", "io", None), ("stem", "", "fixed", None)]
    for name, option in arch.items():
        shade = None if name not in costs else (
            0.5 if high == low else (costs[name] - low) / (high - low))
        nodes.append((name, option, "left_out" if option in _CHAIN_LEFT_OUT else "block", shade))
    return nodes + [("head", "", "fixed", None), ("logits", "", "io", None)]


def _draw_chain(arch: Arch, shapes: dict[str, tuple[int, int, int]] | None,
                title: str | None):
    import seaborn as sns
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    nodes = _chain_nodes(arch)
    unknown = sorted(set(shapes or {}) - {name for name, *_ in nodes})
    if unknown:
        raise ValueError(f"shapes names {unknown}, which are not in the chain "
                         f"{[name for name, *_ in nodes]}")
    for name, shape in (shapes or {}).items():
        if (not isinstance(shape, (tuple, list)) or len(shape) != 3
                or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape)):
            raise ValueError(f"shapes[{name!r}] must be (C, H, W) positive ints, got {shape!r}")
    ncols = math.ceil(len(nodes) / 12)
    per_col = math.ceil(len(nodes) / ncols)
    width, height, step, col_w = 3.0, 0.55, 0.95, 4.4
    xs = [(i // per_col) * col_w for i in range(len(nodes))]
    ys = [-(i % per_col) * step for i in range(len(nodes))]
    xlim, ylim = (-width / 2 - 0.3, xs[-1] + width / 2 + 0.3), (-(per_col - 1) * step - 1.0, 0.9)
    fig = Figure(figsize=(max((xlim[1] - xlim[0]) * _INCH + 0.3, 4.6),
                          (ylim[1] - ylim[0]) * _INCH + 0.9), layout="constrained")
    ax = fig.subplots()
    blues = sns.color_palette("Blues", as_cmap=True)
    boxes = []
    for (name, option, kind, shade), x, y in zip(nodes, xs, ys):
        face = {"io": "white", "fixed": "0.85", "left_out": "white"}.get(
            kind, blues(0.2 + 0.6 * (0.5 if shade is None else shade)))
        box = FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                             boxstyle="round,pad=0,rounding_size=0.12", facecolor=face,
                             edgecolor="0.6" if kind == "left_out" else "black",
                             linestyle="--" if kind == "left_out" else "-", linewidth=1.0)
        ax.add_patch(box)
        boxes.append(box)
        dark = kind == "block" and (0.5 if shade is None else shade) > 0.55
        ax.text(x, y, f"{name}   {option}" if option else name, ha="center", va="center",
                fontsize=8, color="white" if dark else "0.5" if kind == "left_out" else "black")
        if shapes and name in shapes:
            ax.text(x + 0.12, y + height / 2 + 0.08, "\u00d7".join(map(str, shapes[name])),
                    ha="left", va="bottom", fontsize=6.5, color="0.3")
    for i in range(len(nodes) - 1):
        start, patch = (xs[i], ys[i]), boxes[i]
        if xs[i] != xs[i + 1]:  # to the next column: down, across, up over its top, then in
            low, top, mid = ys[i] - height / 2 - 0.3, 0.75, xs[i] + col_w / 2
            ax.plot([xs[i], xs[i], mid, mid, xs[i + 1]], [ys[i] - height / 2, low, low, top, top],
                    color="black", linewidth=1.0)
            start, patch = (xs[i + 1], top), None
        ax.add_patch(FancyArrowPatch(start, (xs[i + 1], ys[i + 1]), arrowstyle="-|>",
                                     mutation_scale=9, linewidth=1.0, patchA=patch,
                                     patchB=boxes[i + 1], shrinkA=0, shrinkB=0))
    ax.set(xlim=xlim, ylim=ylim, aspect="equal")
    ax.set_axis_off()
    active = sum(kind == "block" for _, _, kind, _ in nodes)
    fig.suptitle(title or f"{active} of {len(arch)} blocks in the network")
    fig.supxlabel("darker: larger kernel\u00b2 \u00d7 expansion; dashed: left out",
                  fontsize="x-small", color="0.3")
    return fig


def _cell_nodes(arch: Arch) -> dict[str, int]:
    """Cell type -> number of intermediate nodes, after checking that every node has its choices."""
    found: dict[str, dict[int, set[str]]] = {}
    for name in arch:
        cell, node, part = CELL_KEY.match(name).groups()
        found.setdefault(cell, {}).setdefault(int(node), set()).add(part)
    counts = {}
    for cell in ("normal", "reduce"):
        if cell not in found:
            continue
        counts[cell] = max(found[cell]) + 1
        for i in range(counts[cell]):
            lacking = [p for p in _CELL_PARTS if p not in found[cell].get(i, set())]
            if lacking:
                raise ValueError(f"cell arch lacks {cell}/n{i}/{lacking[0]}: every node 0.."
                                 f"{counts[cell] - 1} needs {list(_CELL_PARTS)}")
    return counts


def _cell_edges(arch: Arch, cell: str) -> list[tuple[str, str, str]]:
    """The op edges of one cell as (source, node, op), node by node, op0 before op1.

    Sources are ``c_{k-2}``, ``c_{k-1}`` or an intermediate node's number.
    """
    counts = _cell_nodes(arch)
    if cell not in counts:
        raise ValueError(f"arch has no {cell!r} cell; it has {list(counts)}")
    edges = []
    for i in range(counts[cell]):
        spec = arch[f"{cell}/n{i}/inputs"]
        match = re.fullmatch(r"(\d+)\+(\d+)", spec)
        if not match or not 0 <= int(match[1]) < int(match[2]) < i + 2:
            raise ValueError(f"{cell}/n{i}/inputs must be 'a+b' with 0 <= a < b < {i + 2}, "
                             f"got {spec!r}")
        for j, source in enumerate((int(match[1]), int(match[2]))):
            op = arch[f"{cell}/n{i}/op{j}"]
            if not op:
                raise ValueError(f"{cell}/n{i}/op{j} is empty")
            edges.append((_CELL_INPUTS[source] if source < 2 else str(source - 2), str(i), op))
    return edges


def _cell_layout(n: int) -> dict[str, tuple[float, float]]:
    """Node centres: the two inputs left, the intermediate nodes in a column, the output right."""
    spacing = 1.3
    top = (n - 1) / 2 * spacing
    side = max(top, 0.8)
    layout = {_CELL_INPUTS[0]: (0.0, side), _CELL_INPUTS[1]: (0.0, -side)}
    layout.update({str(i): (4.4, top - i * spacing) for i in range(n)})
    layout[_CELL_OUTPUT] = (8.4, 0.0)
    return layout


def _draw_cells(arch: Arch, title: str | None):
    import seaborn as sns
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

    counts = _cell_nodes(arch)
    edges = {cell: _cell_edges(arch, cell) for cell in counts}
    most = max(counts.values())
    span = 2 * max((most - 1) / 2 * 1.3, 0.8) + 1.6
    fig = Figure(figsize=(9.8 * _INCH * len(edges) + 0.4, span * _INCH + 1.0),
                 layout="constrained")
    green, blue, yellow = (sns.color_palette("pastel")[i] for i in (2, 0, 8))
    for ax, (cell, cell_edges) in zip(fig.subplots(1, len(edges), squeeze=False)[0],
                                      edges.items()):
        layout = _cell_layout(counts[cell])
        patches = {}
        for label, (x, y) in layout.items():
            if label.isdigit():
                patch = Circle((x, y), 0.32, facecolor=blue, edgecolor="black")
            else:
                patch = FancyBboxPatch((x - 0.5, y - 0.28), 1.0, 0.56, facecolor=(
                    yellow if label == _CELL_OUTPUT else green), edgecolor="black",
                    boxstyle="round,pad=0,rounding_size=0.1")
            ax.add_patch(patch)
            patches[label] = patch
            ax.text(x, y, label if label.isdigit() else f"${label}$", ha="center",
                    va="center", fontsize=9)
        concat = [(str(i), _CELL_OUTPUT, None) for i in range(counts[cell])]
        for source, target, op in cell_edges + concat:
            (x0, y0), (x1, y1) = layout[source], layout[target]
            hops = int(target) - int(source) if source.isdigit() and op else 1
            # Edges between non-adjacent nodes of the column bow out to the right.
            rad = 2 * (1.05 + 0.45 * (hops - 2)) / (y1 - y0) if hops > 1 else 0.0
            left_out = op is None or op in _CELL_LEFT_OUT
            ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), connectionstyle=f"arc3,rad={rad}",
                                         arrowstyle="-|>", mutation_scale=9, linewidth=0.9,
                                         linestyle="--" if left_out else "-",
                                         color="0.55" if left_out else "black",
                                         patchA=patches[source], patchB=patches[target]))
            if op is None:
                continue
            t = {_CELL_INPUTS[0]: 0.38, _CELL_INPUTS[1]: 0.7}.get(source, 0.5)
            # A point of the quadratic Bezier arc3 draws (control point: mid + rad * (dy, -dx)).
            cx, cy = (x0 + x1) / 2 + rad * (y1 - y0), (y0 + y1) / 2 - rad * (x1 - x0)
            lx = (1 - t) ** 2 * x0 + 2 * t * (1 - t) * cx + t ** 2 * x1
            ly = (1 - t) ** 2 * y0 + 2 * t * (1 - t) * cy + t ** 2 * y1
            ax.text(lx, ly, op, ha="center", va="center", fontsize=6.5,
                    color="0.45" if left_out else "black",
                    bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none"))
        ax.set(xlim=(-0.7, 9.1), ylim=(-span / 2, span / 2), aspect="equal")
        ax.set_axis_off()
        ax.set_title(f"{cell} cell", fontsize="medium")
    if title:
        fig.suptitle(title)
    return fig


def draw_arch(arch: Arch, path: str | os.PathLike[str], *,
              shapes: dict[str, tuple[int, int, int]] | None = None,
              title: str | None = None) -> None:
    """Draws a derived architecture and saves it as a PNG, atomically.

    An arch whose every choice is named ``{normal|reduce}/n{i}/{inputs|op0|op1}``
    is a set of DARTS cells: one panel per cell type, its op edges as labelled
    arrows, dashed arrows from each intermediate node to the output. Any other
    arch is a chain ``input -> stem -> blocks -> head -> logits``, blocks in
    the arch's order; ``skip``/``zero`` blocks are dashed, the others shaded by cost.

    Args:
        arch: the architecture.
        path: the PNG file; its directory must exist.
        shapes: chain node name -> (C, H, W) of its input, shown above its box (chains only).
        title: the figure's title; ``None``: a default for chains, none for cells.

    Raises:
        ValueError: an empty arch, a malformed cell arch (a node without its
            inputs or ops, an inputs pair out of range, cell and chain keys
            mixed), or ``shapes`` naming an unknown node or given for cells.
    """
    if not len(arch):
        raise ValueError("draw_arch needs an arch with at least one choice, got an empty one")
    is_cell = [bool(CELL_KEY.match(name)) for name in arch]
    if any(is_cell) and not all(is_cell):
        raise ValueError(f"arch mixes cell choices with others: "
                         f"{[n for n, c in zip(arch, is_cell) if not c]} are not "
                         f"'{{normal|reduce}}/n<i>/{{inputs|op0|op1}}'")
    if all(is_cell) and shapes is not None:
        raise ValueError("shapes are drawn for chain archs only, got them for a cell arch")
    fig = _draw_cells(arch, title) if all(is_cell) else _draw_chain(arch, shapes, title)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
