"""What the cases of the bad-input catalogue do to a run before their command, and check after."""
from __future__ import annotations

import dataclasses
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from _cli_helpers import cli, load_trials
from conftest import SMALL_SPACE, TINY_CONFIG


@dataclasses.dataclass
class Ctx:
    """What a case's damage and command line refer to."""

    run: Path  # a finished run, private to the test
    tmp: Path  # the test's directory and working directory (the run lies inside)
    tiny: Path  # the tiny experiment's config
    monkeypatch: pytest.MonkeyPatch

    @property
    def cfg(self) -> Path:
        """Where a case writes its bad config."""
        return self.tmp / "bad.yaml"

    def fill(self, text: str) -> str:
        return text.format(run=self.run, tmp=self.tmp, tiny=self.tiny, cfg=self.cfg)


# --- damage -----------------------------------------------------------------------------


def config(*edits: tuple[str, str], text: str | bytes | None = None) -> Callable[[Ctx], None]:
    """Writes the bad config: the tiny config with ``edits`` (old, new) applied, or ``text``."""
    def damage(ctx: Ctx) -> None:
        if isinstance(text, bytes):
            ctx.cfg.write_bytes(text)
            return
        body = TINY_CONFIG if text is None else text
        for old, new in edits:
            assert old in body, old
            body = body.replace(old, new)
        ctx.cfg.write_text(body.replace("{tmp}", str(ctx.tmp)))
    return damage


def data_config(name: str, folder: str) -> tuple[str, str]:
    """The edit that points the tiny config at a dataset in ``tmp/folder``."""
    return "{name: synthetic, image_size: 8}", f"{{name: {name}, path: '{{tmp}}/{folder}'}}"


def both(*damages: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
    def damage(ctx: Ctx) -> None:
        for d in damages:
            d(ctx)
    return damage


def replace(name: str, data: bytes | Callable[[bytes], bytes]) -> Callable[[Ctx], None]:
    """Replaces run file ``name`` with ``data`` (or ``data(old bytes)``)."""
    def damage(ctx: Ctx) -> None:
        path = ctx.run / name
        path.write_bytes(data(path.read_bytes()) if callable(data) else data)
    return damage


def delete(name: str) -> Callable[[Ctx], None]:
    return lambda ctx: (ctx.run / name).unlink()


def a_file(name: str = "a_file") -> Callable[[Ctx], None]:
    return lambda ctx: (ctx.tmp / name).write_text("not a directory\n")


def read_only_sys(ctx: Ctx) -> None:
    """Root may write anywhere but below /sys, where even root cannot create a directory."""
    try:
        Path("/sys/hwnas-bad-input").mkdir()
    except OSError:
        return
    Path("/sys/hwnas-bad-input").rmdir()
    pytest.skip("/sys takes new directories here")


def garbage(n: int = 4096) -> bytes:
    """Random bytes with newlines in them and none at the end."""
    return np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes().rstrip(b"\n")


def half(data: bytes) -> bytes:
    return data[:len(data) // 2]


def tear_a_middle_record(data: bytes) -> bytes:
    """The journal with one record in its middle cut short; the records after it intact."""
    lines = data.splitlines(keepends=True)
    middle = len(lines) // 2
    lines[middle] = lines[middle][:len(lines[middle]) // 2] + b"\n"
    return b"".join(lines)


def foreign_journal(study_name: str, objectives: list[str]) -> Callable[[Ctx], None]:
    """A valid Optuna journal holding study ``study_name`` over ``objectives``."""
    def damage(ctx: Ctx) -> None:
        path = ctx.run / "study.journal"
        path.unlink()
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(path)))
        study = optuna.create_study(study_name=study_name, storage=storage,
                                    directions=["minimize"] * len(objectives))
        study.set_user_attr("objectives", objectives)
        study.add_trial(optuna.trial.create_trial(values=[0.5] * len(objectives)))
    return damage


def sqlite_file(path: Callable[[Ctx], Path]) -> Callable[[Ctx], None]:
    """A SQLite database of some other program at ``path(ctx)``."""
    def damage(ctx: Ctx) -> None:
        import sqlite3
        target = path(ctx)
        target.unlink(missing_ok=True)
        with sqlite3.connect(target) as db:
            db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
            db.executemany("INSERT INTO notes (text) VALUES (?)", [("a",), ("b\nc",)] * 50)
        db.close()
    return damage


def other_space_weights(ctx: Ctx) -> None:
    """supernet.h5 of a supernet of another space (one more block in the first stage)."""
    from hwnas.supernet import create_space
    from hwnas.supernet.learners import save_weights
    supernet = create_space("mobilenet", **SMALL_SPACE).supernet()
    save_weights(supernet, ctx.run / "supernet.h5")


def mnist(images_shape: tuple[int, ...], n_images: int | None = None) -> Callable[[Ctx], None]:
    """An MNIST directory whose image file announces ``images_shape`` but may hold
    ``n_images`` images' worth of bytes of 28x28."""
    def damage(ctx: Ctx) -> None:
        folder = ctx.tmp / "mnist"
        folder.mkdir()
        n = images_shape[0]
        body = np.zeros((n_images or n) * 28 * 28, np.uint8).tobytes()
        header = (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in images_shape)
        (folder / "train-images-idx3-ubyte").write_bytes(header + body)
        labels = (np.arange(n) % 10).astype(np.uint8).tobytes()
        (folder / "train-labels-idx1-ubyte").write_bytes(
            (0x801).to_bytes(4, "big") + n.to_bytes(4, "big") + labels)
    return damage


def cifar10_batch(data: np.ndarray, labels: list[int]) -> Callable[[Ctx], None]:
    def damage(ctx: Ctx) -> None:
        folder = ctx.tmp / "cifar"
        folder.mkdir()
        (folder / "data_batch_1").write_bytes(
            pickle.dumps({b"data": data, b"labels": labels}, protocol=2))
    return damage


def copy_run(name: str, *edits: tuple[str, str]) -> Callable[[Ctx], None]:
    """A second finished run at ``tmp/name``, its config.yaml edited."""
    def damage(ctx: Ctx) -> None:
        other = Path(shutil.copytree(ctx.run, ctx.tmp / name))
        text = (other / "config.yaml").read_text()
        for old, new in edits:
            assert old in text, old
            text = text.replace(old, new)
        (other / "config.yaml").write_text(text)
    return damage


def selected_retraining(ctx: Ctx) -> Path:
    """The retraining directory of the finished run's selected subnet."""
    import json

    from hwnas.run.retrain import retrain_dir
    return retrain_dir(ctx.run, json.loads((ctx.run / "selected.json").read_text())["key"])


def claim_other_subnet(ctx: Ctx) -> None:
    """The retraining directory of subnet b0=skip|b1=ir_k3_e2 claims another subnet (a
    directory moved by hand)."""
    import json
    import shutil

    from hwnas.run.retrain import retrain_dir
    target = retrain_dir(ctx.run, "b0=skip|b1=ir_k3_e2")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(selected_retraining(ctx), target)
    claim = json.loads((target / "arch.json").read_text())
    assert claim["key"] != "b0=skip|b1=ir_k3_e2"


def claim_with_a_list_recipe(ctx: Ctx) -> None:
    import json
    path = selected_retraining(ctx) / "arch.json"
    claim = json.loads(path.read_text())
    claim["recipe"] = [claim["recipe"]["epochs"]]
    path.write_text(json.dumps(claim))


def tear_claim(ctx: Ctx) -> None:
    path = selected_retraining(ctx) / "arch.json"
    path.write_bytes(half(path.read_bytes()))


def interrupt_evaluation(ctx: Ctx) -> None:
    """Ctrl-C while the first new subnet is being evaluated."""
    from hwnas.evaluate import Evaluator

    def interrupted(self, arch):
        raise KeyboardInterrupt
    ctx.monkeypatch.setattr(Evaluator, "__call__", interrupted)


def edit_run_config(old: str, new: str) -> Callable[[Ctx], None]:
    """The finished run's own config.yaml with ``old`` replaced by ``new``."""
    def damage(ctx: Ctx) -> None:
        path = ctx.run / "config.yaml"
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new))
    return damage


def interrupt_training(ctx: Ctx) -> None:
    """Ctrl-C during the first batch of the next epoch."""
    from hwnas.supernet.learners._base import BaseLearner

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt
    ctx.monkeypatch.setattr(BaseLearner, "train_step", interrupted)


def trains_on_after_interrupt(ctx: Ctx, capfd: pytest.CaptureFixture) -> None:
    ctx.monkeypatch.undo()
    status, _, err = cli(capfd, "train", ctx.run, "--quiet")
    assert status == 0, err
    with np.load(ctx.run / "train_state.npz") as state:
        assert int(state["epochs_done"]) == 2
    assert (ctx.run / "train_log.csv").read_text().count("\n") == 3  # header + 2 epochs


def corrected_config_replaces_it(ctx: Ctx, capfd: pytest.CaptureFixture) -> None:
    """A directory holding nothing but the failed config takes the corrected one."""
    from hwnas.run.files import configure_run
    run = configure_run(str(ctx.tiny), str(ctx.tmp / "fresh"))
    assert run.config.data.name == "synthetic"
    assert "synthetic" in (ctx.tmp / "fresh" / "config.yaml").read_text()


def resumes_after_interrupt(ctx: Ctx, capfd: pytest.CaptureFixture) -> None:
    trials = load_trials(ctx.run)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert len({t.user_attrs["key"] for t in trials if t.state == TrialState.COMPLETE}) == 6
    ctx.monkeypatch.undo()
    status, out, err = cli(capfd, "search", ctx.run, "--trials", 9, "--quiet")
    assert status == 0, err
    done = load_trials(ctx.run)
    assert not [t for t in done if t.state == TrialState.RUNNING]
    assert len({t.user_attrs["key"] for t in done if t.state == TrialState.COMPLETE}) == 9
    assert [(t.number, t.values) for t in done[:len(trials)]] == \
        [(t.number, t.values) for t in trials]


# --- issue 15: the latency table and its calibration (hwcost) --------------------------


def edit_lut(edit: Callable[[dict], None]) -> Callable[[Ctx], None]:
    """The finished run's lut.json with ``edit`` applied in place to its JSON (a NaN written
    as ``NaN``, as Python's json module and a hand edit write it)."""
    def edited(data: dict) -> dict:
        edit(data)
        return data
    return edit_json("lut.json", edited)


def zero_for_the_fastest_subnet(ctx: Ctx) -> None:
    """A calibration with a negative intercept (as 4 noisy subnets once fitted) that predicts
    exactly 0 ms for the space's fastest subnet, and more for every other one."""
    from hwnas.hwcost import LatencyTable
    from hwnas.run import RunDir, workspace
    space = workspace(RunDir.open(ctx.run), trained=False, progress=False).space
    floor = LatencyTable.load(ctx.run / "lut.json", space).min_table_ms()

    def edit(data: dict) -> None:
        data["calibration"]["b"] = -data["calibration"]["a"] * floor
    edit_lut(edit)(ctx)


# -- issue 15: run files (export all-or-nothing, retrain claim, shapes, supernet fingerprint)


def edit_json(name: str | Callable[[Ctx], Path], edit: Callable[[dict], object]) -> Callable[[Ctx], None]:
    """Run file ``name`` (or ``name(ctx)``) replaced by ``edit(its JSON)``: valid JSON of a
    wrong shape."""
    import json

    def damage(ctx: Ctx) -> None:
        path = name(ctx) if callable(name) else ctx.run / name
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    return damage


def without(*keys: str) -> Callable[[dict], dict]:
    return lambda record: {k: v for k, v in record.items() if k not in keys}


def retrain_file(name: str) -> Callable[[Ctx], Path]:
    return lambda ctx: selected_retraining(ctx) / name


def weights_of_another_training(ctx: Ctx) -> None:
    """supernet.h5 with every weight moved a little: another training's file of the same
    shapes, written by nnabla's own parameter I/O."""
    import nnabla as nn
    path = str(ctx.run / "supernet.h5")
    nn.load_parameters(path)
    params = nn.get_parameters(grad_only=False)
    for param in params.values():
        param.d = param.d + np.float32(0.01)
    nn.save_parameters(path, params)
    nn.clear_parameters()


def corrected_recipe_retrains(ctx: Ctx, capfd: pytest.CaptureFixture) -> None:
    """The refused recipe claimed nothing: with the config corrected, the same subnet retrains."""
    from hwnas.run.retrain import retrain_dir
    edit_run_config("batch_size: 60000", "batch_size: 32")(ctx)
    status, _, err = cli(capfd, "retrain", ctx.run, "--arch", "b0=skip|b1=ir_k3_e2", "--epochs",
                         1, "--quiet")
    assert status == 0, err
    assert (retrain_dir(ctx.run, "b0=skip|b1=ir_k3_e2") / "result.json").exists()


# -- issue 15: one writer per run directory


def hold_run(command: str, *, shared: bool = False) -> Callable[[Ctx], None]:
    """Holds the run directory's lock from this process, as a live ``command`` would (a
    worker holds it shared); ``ctx.holder`` keeps it until ``released_then`` lets go."""
    def damage(ctx: Ctx) -> None:
        from hwnas.io import FileLock  # the tests' own holder of the lock hwnas takes
        from hwnas.run import RunDir

        ctx.holder = FileLock(ctx.run / RunDir.LOCK)
        ctx.holder.acquire(shared=shared, command=command)
    return damage


def released_then(*argv: str) -> Callable[[Ctx, pytest.CaptureFixture], None]:
    """Once the holder lets go, the refused command line ``argv`` succeeds."""
    def after(ctx: Ctx, capfd: pytest.CaptureFixture) -> None:
        from hwnas.run import RunDir

        ctx.holder.release()
        status, _, err = cli(capfd, *(ctx.fill(a) for a in argv))
        assert status == 0, err
        assert not (ctx.run / RunDir.LOCK).exists()
    return after


def full_disk(ctx: Ctx) -> None:
    """Every append to a study journal fails as on a full disk (Optuna's write names no file)."""
    import errno
    import os

    from optuna.storages.journal import JournalFileBackend

    def no_space(self, logs) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    ctx.monkeypatch.setattr(JournalFileBackend, "append_logs", no_space)


def searches_once_there_is_room(ctx: Ctx, capfd: pytest.CaptureFixture) -> None:
    ctx.monkeypatch.undo()
    status, _, err = cli(capfd, "search", ctx.run, "--trials", 8, "--quiet")
    assert status == 0, err
    assert len({t.user_attrs["key"] for t in load_trials(ctx.run)
                if t.state == TrialState.COMPLETE}) == 8


# -- issue 15: the config loader


def alias_bomb(width: int = 30) -> str:
    """A "billion laughs" config: three anchors, each ``width`` aliases of the last, and
    ``train.epochs`` a list of ``width`` aliases of the third: 30**4 values from 2 KB."""
    lines = [f"a: &a [{', '.join(['1'] * width)}]"]
    lines += [f"{b}: &{b} [{', '.join(['*' + a] * width)}]" for a, b in ("ab", "bc")]
    epochs = "[" + ", ".join(["*c"] * width) + "]"
    return "\n".join(lines) + "\n" + TINY_CONFIG.replace("epochs: 1,", f"epochs: {epochs},")


# -- issue 16: rank-check


def rank_check_of_one_subnet(ctx: Ctx) -> None:
    """rank_check.json of the right shape but with one subnet: no ranking can come of it."""
    import json
    correlation = {"kendall_tau": None, "kendall_tau_interval": None, "spearman_rho": None,
                   "spearman_rho_interval": None}
    row = {"key": "b0=skip|b1=ir_k3_e2", "arch": {"b0": "skip", "b1": "ir_k3_e2"},
           "estimate": 0.5, "estimate_test": None, "val_accuracy": 0.5, "test_accuracy": 0.5,
           "val_accuracies": [0.5], "test_accuracies": [0.5], "retrain_dirs": ["retrain/x"],
           "selected": False}
    (ctx.run / "rank_check.json").write_text(json.dumps({
        "recipe": {}, "seeds": 1, "selected": None, "subnets": [row], "val": correlation,
        "test": correlation, "top_k": 1, "top_k_overlap": 1.0, "regret": None,
        "seed_noise_sd": None, "trust_gap": 0.0, "verdict": "-"}))


def few_shot_run(ctx: Ctx) -> None:
    """The finished run made a few-shot one (split_epochs 1): its config edited and its
    training resumed into the split, which writes supernet_split.npz."""
    from hwnas.cli import main  # as in conftest: after the logging config nnabla reads

    edit_run_config("  split_epochs: 0\n", "  split_epochs: 1\n")(ctx)
    assert main(["train", str(ctx.run), "--quiet"]) == 0
    assert (ctx.run / "supernet_split.npz").exists()


def copies_of_another_training(ctx: Ctx) -> None:
    """supernet_split.npz holding other weights of the same shapes (another training's)."""
    path = ctx.run / "supernet_split.npz"
    with np.load(path) as stored:
        arrays = {k: stored[k] for k in stored.files}
    np.savez(path, **{k: v + 1 if v.dtype.kind == "f" else v for k, v in arrays.items()})


# -- issue 17: data sources (folder, csv, npz)


def user_data(name: str, path: str) -> tuple[str, str]:
    """The edit that points the tiny config at the user's data ``tmp/path`` of source ``name``."""
    return ("{name: synthetic, image_size: 8}",
            f"{{name: {name}, path: '{{tmp}}/{path}', image_size: 8}}")


def digit_images(*changes: Callable[[Path], None]) -> Callable[[Ctx], None]:
    """50 digits as ``tmp/images/CLASS/NNNN.png`` (class 3 holds 0015..0019.png) and
    ``tmp/images.csv`` listing them; then each change(tmp)."""
    # Imported here: only these cases need it, and this section stays self-contained.
    from _data_helpers import digits_uint8, write_csv, write_folder

    def damage(ctx: Ctx) -> None:
        x, y = digits_uint8(50)
        files = write_folder(ctx.tmp / "images", x, y)
        write_csv(ctx.tmp / "images.csv", files, y)
        for change in changes:
            change(ctx.tmp)
    return damage


def edit_text(name: str, old: str, new: str) -> Callable[[Path], None]:
    def change(tmp: Path) -> None:
        text = (tmp / name).read_text()
        assert old in text, old
        (tmp / name).write_text(text.replace(old, new, 1))
    return change


def digits_npz(x: np.ndarray | None = None, y: np.ndarray | None = None) -> Callable[[Ctx], None]:
    """``tmp/digits.npz``: 50 digits, with ``x`` or ``y`` replaced where given."""
    from _data_helpers import digits_uint8  # as in digit_images

    def damage(ctx: Ctx) -> None:
        images, labels = digits_uint8(50)
        np.savez(ctx.tmp / "digits.npz", x=images if x is None else x,
                 y=labels if y is None else y)
    return damage


def huge_npz(ctx: Ctx) -> None:
    """``tmp/big.npz`` whose x announces 10**9 images of 8x8 and holds none of them: only
    the header is read before the data set is refused for its size."""
    import io  # as in digit_images
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (10**9, 8, 8)})
    with zipfile.ZipFile(ctx.tmp / "big.npz", "w") as archive:
        archive.writestr("x.npy", header.getvalue())  # the header starts with the magic
        labels = io.BytesIO()
        np.lib.format.write_array(labels, np.zeros(3, np.int64))
        archive.writestr("y.npy", labels.getvalue())


# -- issue 17: a user's own space, strategy and dataset by spec


#: A user's file of the plug-in cases: a function that is no space, and a space that refuses
#: nothing (the example's).
USER_FILE = '''\
def helper():
    return 1
'''


def user_file(name: str, text: str = USER_FILE) -> Callable[[Ctx], None]:
    """Writes ``tmp/name``, a user's Python file a spec names."""
    def damage(ctx: Ctx) -> None:
        (ctx.tmp / name).write_text(text)
    return damage


def entry_point(group: str, name: str, value: str) -> Callable[[Ctx], None]:
    """An installed package (a dist-info on sys.path, in ``tmp/site``) declaring the entry
    point ``name = value`` in ``group``."""
    def damage(ctx: Ctx) -> None:
        info = ctx.tmp / "site" / "user_plugin-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: user-plugin\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {value}\n")
        ctx.monkeypatch.syspath_prepend(str(ctx.tmp / "site"))
    return damage
