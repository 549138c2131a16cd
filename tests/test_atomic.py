"""Every file hwnas writes is written atomically (a temporary file, then a rename): a crash
half-way through a write leaves the previous file as it was and no temporary file behind.

Two kinds of tests: a scan of the source for direct writes that do not go through
``hwnas.io.atomic_write`` (with an explicit allow-list), and writers made to fail
half-way through for the checkpoint, the weights, front.csv, selected.json and a plot.
"""
from __future__ import annotations

import ast
import io
import os
from pathlib import Path

import nnabla as nn
import numpy as np
import pytest

from hwnas.io import atomic_write, atomic_write_json, atomic_write_text
from _cli_helpers import cli, snapshot

PACKAGE = Path(__file__).resolve().parent.parent / "hwnas"

#: Calls that write a file whatever object they are called on.
WRITING_METHODS = {"write_text", "write_bytes", "savefig", "tofile", "save_parameters"}
#: module.function calls that write a file.
WRITING_FUNCTIONS = {
    ("np", "save"), ("np", "savez"), ("np", "savez_compressed"), ("numpy", "save"),
    ("json", "dump"), ("pickle", "dump"), ("yaml", "dump"), ("yaml", "safe_dump"),
    ("shutil", "copy"), ("shutil", "copy2"), ("shutil", "copyfile"), ("shutil", "copytree"),
    ("shutil", "move"), ("os", "replace"), ("os", "rename"), ("os", "write"),
}
#: Bare names that write: nnabla.utils.save.save and nn.save_parameters imported by name.
WRITING_NAMES = {"save", "save_parameters"}

#: Writes that are not atomic on purpose: (file relative to hwnas/, enclosing function, call).
ALLOWED = {
    # Optuna's journal is append-only; a record torn by a crash is dropped on the next open.
    ("studies/_store.py", "repair_journal", "open"),
    # The one place that renames the temporary file over the target.
    ("io/_atomic.py", "atomic_write", "os.replace"),
    # Exported models are written (atomically) into a staging directory beside them and
    # checked there; only files that passed their check are renamed into place.
    ("deploy/_export.py", "export_checked", "os.replace"),
}


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else "?"
        return f"{owner}.{func.attr}"
    return "?"


def _writes(call: ast.Call) -> bool:
    """Whether ``call`` writes to a file it is given (rather than returning the data)."""
    func = call.func
    if isinstance(func, ast.Name):
        if func.id == "open":
            mode = call.args[1] if len(call.args) > 1 else next(
                (k.value for k in call.keywords if k.arg == "mode"), None)
            text = mode.value if isinstance(mode, ast.Constant) else "r"
            return any(c in str(text) for c in "wax+")
        return func.id in WRITING_NAMES
    if not isinstance(func, ast.Attribute):
        return False
    if func.attr in WRITING_METHODS:
        return True
    if func.attr in ("to_csv", "to_json", "to_parquet", "to_pickle"):  # a path: writes
        return bool(call.args) or any(k.arg in ("path_or_buf", "path") for k in call.keywords)
    if isinstance(func.value, ast.Name) and (func.value.id, func.attr) in WRITING_FUNCTIONS:
        if func.attr in ("dump", "safe_dump") and func.value.id == "yaml":
            return len(call.args) > 1 or any(k.arg == "stream" for k in call.keywords)
        return True
    if func.attr == "File" and isinstance(func.value, ast.Name) and func.value.id == "h5py":
        mode = call.args[1] if len(call.args) > 1 else None
        return not (isinstance(mode, ast.Constant) and mode.value == "r")
    return False


def unwrapped_writes(source: str, filename: str = "<source>") -> list[tuple[str, str, int]]:
    """(enclosing function, call, line) of every write in ``source`` outside ``atomic_write``."""
    tree = ast.parse(source, filename)
    found: list[tuple[str, str, int]] = []

    def visit(node: ast.AST, function: str, wrapped: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        if isinstance(node, ast.Call):
            if _writes(node) and not wrapped:
                found.append((function, _call_name(node), node.lineno))
            # Whatever the write callback of atomic_write does lands in its temporary file.
            wrapped = wrapped or _call_name(node) in ("atomic_write", "_io.atomic_write")
        for child in ast.iter_child_nodes(node):
            visit(child, function, wrapped)

    visit(tree, "<module>", False)
    return found


def test_the_scan_finds_direct_writes_and_accepts_wrapped_ones():
    direct = """
def f(path, fig, table, arrays):
    Path(path).write_text("x")
    fig.savefig(path)
    table.to_csv(path, index=False)
    np.savez(path, **arrays)
    with open(path, "w") as out:
        out.write("x")
    h5py.File(path, "a")
    save(path, {})
"""
    assert [call for _, call, _ in unwrapped_writes(direct)] == [
        "?.write_text", "fig.savefig", "table.to_csv", "np.savez", "open", "h5py.File", "save"]
    wrapped = """
def f(path, fig, table, arrays):
    atomic_write(path, lambda tmp: Path(tmp).write_text("x"))
    atomic_write(path, lambda tmp: fig.savefig(tmp))
    atomic_write_text(path, table.to_csv(index=False))
    atomic_write(path, lambda tmp: np.savez(tmp, **arrays))
    with open(path) as f, open(path, "rb") as g, h5py.File(path, "r") as h:
        pass
    text = yaml.safe_dump({}, sort_keys=False)
"""
    assert unwrapped_writes(wrapped) == []


def test_every_write_in_the_package_is_atomic():
    offending = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for function, call, line in unwrapped_writes(path.read_text(), str(path)):
            if (rel, function, call) not in ALLOWED:
                offending.append(f"hwnas/{rel}:{line} {call} in {function}()")
    assert not offending, ("write these through hwnas.io.atomic_write (or allow them, with "
                           "the reason, in ALLOWED): " + "; ".join(offending))


def test_the_allow_list_has_no_stale_entry():
    seen = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        seen.update((rel, function, call) for function, call, _ in
                    unwrapped_writes(path.read_text(), str(path)))
    assert ALLOWED <= seen, sorted(ALLOWED - seen)


# --- behaviour: writers that fail half-way ----------------------------------------------


class DiskFull(OSError):
    def __init__(self) -> None:
        super().__init__(28, "No space left on device")


def half_then_fail(write_whole):
    """A writer that writes the first half of what ``write_whole(target)`` would, then fails."""
    def write(target, *args, **kwargs):
        buffer = io.BytesIO()
        write_whole(buffer, *args, **kwargs)
        data = buffer.getvalue()
        Path(target).write_bytes(data[:len(data) // 2])
        raise DiskFull()
    return write


def assert_untouched(before: dict[str, bytes], directory: Path) -> None:
    after = snapshot(directory)
    assert sorted(after) == sorted(before), \
        f"left behind {sorted(set(after) - set(before))}, lost {sorted(set(before) - set(after))}"
    assert [n for n in before if after[n] != before[n]] == []


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"v": 1})
    before = snapshot(tmp_path)

    def fail(tmp: str) -> None:
        Path(tmp).write_text('{"v": ')
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, fail)
    assert_untouched(before, tmp_path)
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.fixture
def learner(run_copy):
    """A learner over the finished run's supernet, checkpointing into the run."""
    from hwnas import run as steps
    from hwnas.supernet.learners import LEARNERS

    run = steps.RunDir.open(run_copy)
    ws = steps.workspace(run, progress=False)
    cfg = run.config
    learner = LEARNERS[cfg.train.learner](space=ws.space, supernet=ws.supernet, data=ws.data,
                                          config=cfg.train, seed=cfg.seed, run_dir=run.path,
                                          progress=False)
    assert learner._restore() == cfg.train.epochs
    return learner


def _perturb(learner) -> None:
    for param in learner.supernet.net_parameters().values():
        param.d = param.d + 1.0


@pytest.mark.parametrize("failing", ["train_state.npz", "supernet.h5"])
def test_a_checkpoint_that_fails_half_way_leaves_the_last_one(failing, learner, run_copy,
                                                               monkeypatch):
    before = snapshot(run_copy)
    _perturb(learner)  # so that a finished write would change the files
    if failing == "train_state.npz":
        monkeypatch.setattr(np, "savez", half_then_fail(np.savez))
    else:
        real = nn.save_parameters

        def to_buffer(buffer, params):  # nnabla writes .h5 to a path only
            import tempfile
            with tempfile.TemporaryDirectory() as d:
                real(os.path.join(d, "w.h5"), params=params)
                buffer.write(Path(d, "w.h5").read_bytes())
        monkeypatch.setattr(nn, "save_parameters", half_then_fail(to_buffer))
    with pytest.raises(OSError, match="No space left"):
        learner._checkpoint(1)
    after = snapshot(run_copy)
    assert sorted(after) == sorted(before), "a temporary file was left behind"
    # The checkpoint is written last: whatever failed, it still says what it said.
    assert after["train_state.npz"] == before["train_state.npz"]
    if failing == "supernet.h5":
        assert after == before
    monkeypatch.undo()
    learner._checkpoint(1)  # and the next checkpoint goes through
    written = snapshot(run_copy)
    assert sorted(written) == sorted(before)
    assert written["train_state.npz"] != before["train_state.npz"]
    assert written["supernet.h5"] != before["supernet.h5"]


def _fail_writing(monkeypatch, prefix: str) -> None:
    """Path.write_text fails half-way for temporary files named ``prefix``*."""
    real = Path.write_text

    def write_text(self, data, *args, **kwargs):
        if not self.name.startswith(prefix):
            return real(self, data, *args, **kwargs)
        real(self, data[:len(data) // 2])
        raise DiskFull()
    monkeypatch.setattr(Path, "write_text", write_text)


def test_front_csv_that_fails_half_way_leaves_the_last_one(run_copy, capfd, monkeypatch):
    before = snapshot(run_copy)
    _fail_writing(monkeypatch, ".front.")
    status, _, err = cli(capfd, "front", run_copy)
    assert status == 2 and f"No space left on device: {run_copy / 'front.csv'}" in err, err
    assert_untouched(before, run_copy)


def test_selected_json_that_fails_half_way_leaves_the_last_one(run_copy, capfd, monkeypatch):
    before = snapshot(run_copy)
    _fail_writing(monkeypatch, ".selected.")
    status, _, err = cli(capfd, "select", run_copy, "--budget", "params=50000")
    assert status == 2 and f"No space left on device: {run_copy / 'selected.json'}" in err, err
    assert_untouched(before, run_copy)
    monkeypatch.undo()
    status, _, err = cli(capfd, "select", run_copy, "--budget", "params=50000")
    assert status == 0, err
    assert b"50000" in (run_copy / "selected.json").read_bytes()


def test_a_plot_that_fails_half_way_leaves_the_last_one(run_copy, capfd, monkeypatch):
    from matplotlib.figure import Figure

    real = Figure.savefig

    def savefig(self, target, *args, **kwargs):
        if Path(target).name.startswith(".hv."):
            half_then_fail(lambda buffer: real(self, buffer, *args, **kwargs))(target)
        return real(self, target, *args, **kwargs)
    monkeypatch.setattr(Figure, "savefig", savefig)
    before = snapshot(run_copy)
    status, _, err = cli(capfd, "front", run_copy)
    assert status == 2 and "No space left on device" in err, err
    after = snapshot(run_copy)
    assert sorted(after) == sorted(before), "a temporary file was left behind"
    assert after["hv.png"] == before["hv.png"]


def test_resume_drops_log_rows_of_an_epoch_whose_checkpoint_was_never_written(learner, run_copy):
    """A crash between the logs and the checkpoint: the epoch is trained again, logged once."""
    log = run_copy / "train_log.csv"
    rows = log.read_text().splitlines()
    assert len(rows) == 2  # header, epoch 1
    log.write_text("\n".join([*rows, rows[1].replace("1", "2", 1)]) + "\n")
    assert learner._restore() == 1
    assert [row["epoch"] for row in learner.history] == [1]
