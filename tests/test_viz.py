"""Tests for hwnas.supernet._viz: heat maps of architecture probabilities, drawings of archs."""
from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from hwnas.arch import Arch
from hwnas.supernet._viz import (LOG_COLUMNS, _cell_edges, _cell_layout, _chain_nodes,
                                 _trajectory_matrices, draw_arch, plot_arch_trajectories)

EDGES = ["b2", "normal/n1/in0", "b0"]  # deliberately not sorted
OPTIONS = ["skip", "ir_k5_e6", "zero", "ir_k3_e3"]  # deliberately not sorted
STEPS = [0, 10, 20, 30, 40]


def make_log(seed: int = 0) -> pd.DataFrame:
    """3 edges x 4 options x 5 steps, rows shuffled within each step, two epochs."""
    rng = np.random.default_rng(seed)
    rows = []
    for step in STEPS:
        for edge in EDGES:
            probs = rng.dirichlet(np.ones(len(OPTIONS)))
            for option, prob in zip(OPTIONS, probs):
                rows.append(dict(step=step, epoch=step // 25, edge=edge, option=option,
                                 prob=prob))
    return pd.DataFrame(rows)


def read_png(path) -> np.ndarray:
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].var() > 0.0, "the figure is blank"
    return image


def only_file(directory) -> str:
    """The one file in ``directory`` (atomic writes leave no temporary file behind)."""
    names = sorted(p.name for p in directory.iterdir())
    assert len(names) == 1, names
    return names[0]


# --- trajectories ---------------------------------------------------------------------


def test_trajectory_matrices_keep_first_appearance_order_and_equal_the_pivot():
    log = make_log()
    # Later steps listed first: step order must come from the values, not the rows.
    log = pd.concat([log[log.step >= 20], log[log.step < 20]], ignore_index=True)
    matrices = _trajectory_matrices(log)
    assert list(matrices) == EDGES
    for edge, (options, steps, matrix) in matrices.items():
        assert options == OPTIONS
        assert list(steps) == STEPS
        pivot = (log[log.edge == edge].pivot(index="option", columns="step", values="prob")
                 .loc[OPTIONS, STEPS].to_numpy())
        np.testing.assert_array_equal(matrix, pivot)
        np.testing.assert_allclose(matrix.sum(axis=0), 1.0)


def test_trajectory_matrices_leave_unlogged_pairs_empty():
    log = make_log()
    # b0 logs only three of its options from step 30 on (the others had probability 0).
    drop = (log.edge == "b0") & (log.step >= 30) & (log.option == "zero")
    log.loc[(log.edge == "b0") & (log.step >= 30) & (log.option == "skip"), "prob"] += \
        log.loc[drop, "prob"].to_numpy()
    options, steps, matrix = _trajectory_matrices(log[~drop])["b0"]
    assert options == OPTIONS
    assert np.isnan(matrix[2, 3:]).all() and not np.isnan(np.delete(matrix, 2, axis=0)).any()


def test_plot_arch_trajectories_writes_a_png(tmp_path):
    path = tmp_path / "alpha.png"
    plot_arch_trajectories(make_log(), path, title="three edges")
    assert only_file(tmp_path) == "alpha.png"
    small = read_png(path)
    # More edges, more panels: a larger figure.
    wide = make_log()
    wide = pd.concat([wide.assign(edge=wide.edge + f"/{i}") for i in range(4)], ignore_index=True)
    plot_arch_trajectories(wide, tmp_path / "wide.png")
    large = read_png(tmp_path / "wide.png")
    assert large.shape[0] > small.shape[0]


def test_plot_arch_trajectories_rejects_probabilities_that_do_not_sum_to_one(tmp_path):
    log = make_log()
    log.loc[(log.edge == "b0") & (log.step == 20) & (log.option == "zero"), "prob"] += 0.01
    with pytest.raises(ValueError, match=r"'b0' at step 20 sum to 1\.01"):
        plot_arch_trajectories(log, tmp_path / "alpha.png")
    # Within the tolerance is fine.
    log = make_log()
    log.loc[log.option == "zero", "prob"] += 5e-4
    _trajectory_matrices(log)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("column", LOG_COLUMNS)
def test_plot_arch_trajectories_names_a_missing_column(tmp_path, column):
    with pytest.raises(ValueError, match=f"lacks column.*'{column}'"):
        plot_arch_trajectories(make_log().drop(columns=column), tmp_path / "alpha.png")
    assert list(tmp_path.iterdir()) == []


def test_plot_arch_trajectories_rejects_empty_repeated_and_out_of_range_logs(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        plot_arch_trajectories(pd.DataFrame(columns=list(LOG_COLUMNS)), tmp_path / "a.png")
    log = make_log()
    with pytest.raises(ValueError, match="logged twice"):
        _trajectory_matrices(pd.concat([log, log.iloc[:1]]))
    log.loc[0, "prob"] = -0.1
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _trajectory_matrices(log)
    log.loc[0, "prob"] = np.nan
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _trajectory_matrices(log)


# --- chains ---------------------------------------------------------------------------


CHAIN = Arch({"b0": "ir_k3_e3", "b1": "skip", "b2": "ir_k5_e6", "b3": "zero", "b4": "conv_k3"})


def test_chain_nodes_in_order_with_left_out_blocks_and_cost_shades():
    nodes = _chain_nodes(CHAIN)
    assert [name for name, *_ in nodes] == ["input", "stem", "b0", "b1", "b2", "b3", "b4",
                                            "head", "logits"]
    kinds = {name: kind for name, _, kind, _ in nodes}
    assert kinds == {"input": "io", "stem": "fixed", "b0": "block", "b1": "left_out",
                     "b2": "block", "b3": "left_out", "b4": "block", "head": "fixed",
                     "logits": "io"}
    shades = {name: shade for name, _, _, shade in nodes}
    # kernel^2 x expansion: conv_k3 = 9 < ir_k3_e3 = 27 < ir_k5_e6 = 150.
    assert shades["b4"] == 0.0 and shades["b2"] == 1.0 and 0.0 < shades["b0"] < 1.0
    assert shades["b1"] is None and shades["stem"] is None


def test_draw_arch_chain(tmp_path):
    shapes = {"stem": (3, 32, 32), "b0": (16, 32, 32), "b2": (24, 16, 16)}
    draw_arch(CHAIN, tmp_path / "chain.png", shapes=shapes)
    assert only_file(tmp_path) == "chain.png"
    read_png(tmp_path / "chain.png")
    # A long chain wraps into columns instead of growing without end.
    long = Arch({f"b{i}": "ir_k3_e6" if i % 3 else "skip" for i in range(22)})
    draw_arch(long, tmp_path / "long.png", title="22 blocks")
    image = read_png(tmp_path / "long.png")
    assert image.shape[0] < 2.5 * image.shape[1]


def test_draw_arch_chain_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="'b9'"):
        draw_arch(CHAIN, tmp_path / "chain.png", shapes={"b9": (8, 8, 8)})
    for bad in [(8, 8), (8, 0, 8), 8, (8.0, 8, 8)]:
        with pytest.raises(ValueError, match=r"shapes\['b0'\]"):
            draw_arch(CHAIN, tmp_path / "chain.png", shapes={"b0": bad})
    with pytest.raises(ValueError, match="empty"):
        draw_arch(Arch({}), tmp_path / "chain.png")
    assert list(tmp_path.iterdir()) == []


# --- DARTS cells ----------------------------------------------------------------------

NORMAL = [("0+1", "sep_conv_3x3", "sep_conv_5x5"), ("0+2", "skip_connect", "dil_conv_3x3"),
          ("1+3", "max_pool_3x3", "zero"), ("2+4", "sep_conv_3x3", "avg_pool_3x3")]
REDUCE = [("0+1", "max_pool_3x3", "max_pool_3x3"), ("1+2", "skip_connect", "sep_conv_5x5"),
          ("0+3", "dil_conv_5x5", "skip_connect"), ("3+4", "sep_conv_3x3", "max_pool_3x3")]


def cells(**cells: list[tuple[str, str, str]]) -> dict[str, str]:
    choices = {}
    for cell, nodes in cells.items():
        for i, (inputs, op0, op1) in enumerate(nodes):
            choices.update({f"{cell}/n{i}/inputs": inputs, f"{cell}/n{i}/op0": op0,
                            f"{cell}/n{i}/op1": op1})
    return choices


DARTS = Arch(cells(normal=NORMAL, reduce=REDUCE))


def test_cell_edges_are_exactly_the_encoded_ones():
    assert _cell_edges(DARTS, "normal") == [
        ("c_{k-2}", "0", "sep_conv_3x3"), ("c_{k-1}", "0", "sep_conv_5x5"),
        ("c_{k-2}", "1", "skip_connect"), ("0", "1", "dil_conv_3x3"),
        ("c_{k-1}", "2", "max_pool_3x3"), ("1", "2", "zero"),
        ("0", "3", "sep_conv_3x3"), ("2", "3", "avg_pool_3x3")]
    reduce = _cell_edges(DARTS, "reduce")
    assert len(reduce) == 8
    assert [(s, d) for s, d, _ in reduce] == [
        ("c_{k-2}", "0"), ("c_{k-1}", "0"), ("c_{k-1}", "1"), ("0", "1"),
        ("c_{k-2}", "2"), ("1", "2"), ("1", "3"), ("2", "3")]
    assert [op for _, _, op in reduce] == [op for _, *ops in REDUCE for op in ops]
    # Every edge goes forward: from an input or an earlier node.
    for cell in ("normal", "reduce"):
        for source, target, _ in _cell_edges(DARTS, cell):
            assert not source.isdigit() or int(source) < int(target)


def test_cell_layout_puts_every_node_apart():
    layout = _cell_layout(4)
    assert set(layout) == {"c_{k-2}", "c_{k-1}", "0", "1", "2", "3", "c_{k}"}
    points = np.array(list(layout.values()))
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    assert distances[~np.eye(len(points), dtype=bool)].min() > 1.0
    assert layout["c_{k-2}"][0] < layout["0"][0] < layout["c_{k}"][0]


def test_draw_arch_cells(tmp_path):
    draw_arch(DARTS, tmp_path / "cells.png", title="DARTS cells")
    assert only_file(tmp_path) == "cells.png"
    both = read_png(tmp_path / "cells.png")
    draw_arch(Arch(cells(normal=NORMAL)), tmp_path / "normal.png")
    one = read_png(tmp_path / "normal.png")
    # One panel per cell type present.
    assert both.shape[1] > 1.6 * one.shape[1]
    with pytest.raises(ValueError, match="no 'reduce' cell"):
        _cell_edges(Arch(cells(normal=NORMAL)), "reduce")


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("normal/n2/op1"), r"lacks normal/n2/op1"),
    (lambda c: c.pop("reduce/n0/inputs"), r"lacks reduce/n0/inputs"),
    (lambda c: [c.pop(k) for k in list(c) if k.startswith("normal/n1/")], r"lacks normal/n1/"),
    (lambda c: c.update({"normal/n1/inputs": "2+2"}), r"normal/n1/inputs .* got '2\+2'"),
    (lambda c: c.update({"normal/n1/inputs": "1+3"}), r"0 <= a < b < 3, got '1\+3'"),
    (lambda c: c.update({"normal/n0/inputs": "0,1"}), r"got '0,1'"),
    (lambda c: c.update({"reduce/n3/op0": ""}), r"reduce/n3/op0 is empty"),
    (lambda c: c.update({"b0": "ir_k3_e3"}), r"mixes cell choices.*'b0'"),
])
def test_draw_arch_rejects_malformed_cells(tmp_path, change, message):
    choices = cells(normal=NORMAL, reduce=REDUCE)
    change(choices)
    path = tmp_path / "cells.png"
    path.write_bytes(b"earlier figure")
    with pytest.raises(ValueError, match=message):
        draw_arch(Arch(choices), path)
    # A failed drawing leaves the earlier file as it was, and nothing else.
    assert only_file(tmp_path) == "cells.png" and path.read_bytes() == b"earlier figure"


def test_draw_arch_rejects_shapes_for_cells(tmp_path):
    with pytest.raises(ValueError, match="chain archs only"):
        draw_arch(DARTS, tmp_path / "cells.png", shapes={"normal": (8, 8, 8)})


def test_a_crash_while_saving_leaves_the_earlier_figure(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def crash(self, fname, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"half a png")
        raise RuntimeError("disk full")

    path = tmp_path / "figure.png"
    path.write_bytes(b"earlier figure")
    monkeypatch.setattr(Figure, "savefig", crash)
    for draw in (lambda: plot_arch_trajectories(make_log(), path),
                 lambda: draw_arch(CHAIN, path), lambda: draw_arch(DARTS, path)):
        with pytest.raises(RuntimeError, match="disk full"):
            draw()
        assert only_file(tmp_path) == "figure.png" and path.read_bytes() == b"earlier figure"
