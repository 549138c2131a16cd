"""hwnas report (one self-contained report.html) and hwnas dashboard (optuna-dashboard, read-only)."""
from __future__ import annotations

import base64
import io
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from hwnas.cli import main
from hwnas.run.retrain import retrain_dir

SECTIONS = ("experiment", "training", "front", "architecture", "costs", "budgets", "retrained",
            "rank-check", "export", "reproduce")


def files_of(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` by relative name, with its bytes."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def report(run: Path, capsys) -> str:
    """Runs ``hwnas report RUN``; returns report.html."""
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == f"wrote {run / 'report.html'}" and out.err == ""
    return (run / "report.html").read_text()


def section(html: str, ident: str) -> str:
    found = re.findall(rf'<section id="{ident}">(.*?)</section>', html, re.S)
    assert len(found) == 1, f"section {ident!r} appears {len(found)} times"
    return found[0]


def text(fragment: str) -> str:
    """The visible text of an HTML fragment, images left out."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)).replace("&#x27;", "'")


def pngs(html: str) -> list[Image.Image]:
    images = []
    for tag in re.findall(r"<img\b[^>]*>", html):
        src = re.search(r'src="([^"]*)"', tag)[1]
        assert src.startswith("data:image/png;base64,"), f"image not embedded: {src[:60]}"
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        image = Image.open(io.BytesIO(data))
        image.load()
        images.append(image)
    return images


def test_report_of_a_finished_run(run_copy: Path, capsys) -> None:
    (run_copy / "report.html").unlink()  # 'hwnas run' wrote one: write it again
    before = files_of(run_copy)
    html = report(run_copy, capsys)
    after = files_of(run_copy)
    assert after.pop("report.html")
    assert after == before  # nothing else written, changed or left behind

    for ident in SECTIONS:
        section(html, ident)
    images = pngs(html)
    assert len(images) >= 4  # training curves, front, hypervolume, architecture
    assert all(im.width >= 200 and im.height >= 150 for im in images)
    for ident in ("training", "front", "architecture"):
        assert pngs(section(html, ident)), f"no figure in section {ident}"
    # Self-contained: no URL, no file reference, no external style sheet or script.
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<(link|script|iframe)\b", html) and "url(" not in html
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', html))
    assert all(s.startswith("data:image/png;base64,") for s in re.findall(r'src="([^"]*)"', html))

    selected = json.loads((run_copy / "selected.json").read_text())
    costs = selected["costs"]
    shown = text(section(html, "costs"))
    assert selected["key"] in shown
    assert f"{costs['params']:,}" in shown and f"{costs['macs']:,}" in shown
    assert f"{costs['memory_bytes']:,}" in shown
    assert f"{100 * selected['metrics']['accuracy']:.2f} %" in shown
    assert f"{selected['latency_ms_measured']:.4f}" in shown
    assert f"{selected['latency_ms_predicted']:.4f}" in shown
    assert costs["protocol"]["device"] in shown and "cpu_median" in shown
    budgets = text(section(html, "budgets"))
    assert f"{costs['params']:,}" in budgets and "100,000" in budgets and "✓ met" in budgets
    # The selected subnet is the highlighted row of the front table.
    front = section(html, "front")
    row = re.search(r'<tr class="selected">(.*?)</tr>', front, re.S)
    assert row and selected["key"] in text(row[1])
    for key in json.loads((run_copy / "export.json").read_text())["key"], selected["key"]:
        assert key in text(section(html, "architecture") + section(html, "export"))
    arch = text(section(html, "architecture"))
    assert all(f"{name} {option}" in arch for name, option in selected["arch"].items())

    experiment = text(section(html, "experiment"))
    assert "tiny" in experiment and "synthetic" in experiment and "tpe-ls" in experiment
    assert "<details>" in section(html, "experiment") and "head_channels: 16" in experiment
    reproduce = text(section(html, "reproduce"))
    assert f"hwnas run {run_copy}/config.yaml --out" in reproduce
    assert "hwnas select" in reproduce and "nnabla 1.39" in reproduce
    assert "Python 3." in reproduce and "optuna" in reproduce
    # 'hwnas run' retrained the selected subnet: its numbers are shown.
    result = json.loads((retrain_dir(run_copy, selected["key"]) / "result.json").read_text())
    retrained = text(section(html, "retrained"))
    assert f"{100 * result['test_accuracy']:.2f} %" in retrained and "hwnas retrain" not in retrained


def test_report_shows_retraining_and_export(run_copy: Path, capsys) -> None:
    selected = json.loads((run_copy / "selected.json").read_text())
    key = selected["key"]
    shutil.rmtree(run_copy / "retrain")  # the finished run's own: replaced by known numbers
    folder = retrain_dir(run_copy, key)
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({
        "key": key, "arch": selected["arch"], "epochs": 3, "test_accuracy": 0.8125,
        "val_accuracy": 0.7917, "supernet_val_accuracy": selected["metrics"]["accuracy"],
        "supernet_test_accuracy": 0.1917, "seconds": 12.5,
        "recipe": {"lr": 0.05, "weight_decay": 0.0005, "augmentation": "none"}}))
    (folder / "log.csv").write_text(
        "epoch,lr,loss,train_accuracy,val_accuracy\n1,0.05,2.1,0.31,0.40\n"
        "2,0.025,1.2,0.62,0.70\n3,0.0,0.8,0.80,0.7917\n")
    (run_copy / "model.onnx").write_bytes(b"\0" * 3072)
    (run_copy / "export.json").write_text(json.dumps({
        "key": key, "arch": selected["arch"], "weights": "retrained",
        "input_shape": [-1, 1, 8, 8], "test_examples": 120,
        "formats": {"nnp": {"model": "model.nnp", "runtime": "nnabla 1.39.0",
                            "test_accuracy": 0.8125, "max_abs_diff": 2.4e-7},
                    "onnx": {"model": "model.onnx", "runtime": "onnxruntime 1.20.1",
                             "opset": 13, "test_accuracy": 0.8125, "max_abs_diff": 3.1e-6}}}))
    html = report(run_copy, capsys)

    retrained = section(html, "retrained")
    shown = text(retrained)
    assert "81.25 %" in shown and "79.17 %" in shown and "19.17 %" in shown
    assert f"{100 * selected['metrics']['accuracy']:.2f} %" in shown
    assert "12.5 s" in shown and "augmentation" in shown and "hwnas retrain" not in shown
    assert len(pngs(retrained)) == 1  # the retraining curves
    export = text(section(html, "export"))
    assert "onnxruntime 1.20.1" in export and "nnabla 1.39.0" in export and "3.0 KiB" in export
    assert "3.1e-06" in export and "2.4e-07" in export and "retrained from scratch" in export
    reproduce = text(section(html, "reproduce"))
    assert "hwnas retrain" in reproduce and "--format onnx" in reproduce


def test_report_says_what_to_run_for_missing_inputs(run_copy: Path, capsys) -> None:
    for name in ("selected.json", "export.json", "front.csv", "measured.json", "train_log.csv",
                 "study.journal"):
        (run_copy / name).unlink()
    shutil.rmtree(run_copy / "retrain")
    html = report(run_copy, capsys)
    expected = {"training": "hwnas train", "front": "hwnas search", "architecture": "hwnas select",
                "costs": "hwnas select", "retrained": "hwnas select", "export": "hwnas export",
                "rank-check": "hwnas rank-check"}
    for ident, command in expected.items():
        assert f"{command} {run_copy}" in text(section(html, ident)), ident
    assert "100,000" in text(section(html, "budgets"))  # the config's budgets, not yet met by any
    assert "could not be drawn" not in html
    assert not (run_copy / "study.journal").exists()


def test_report_computes_the_front_without_front_csv(run_copy: Path, capsys) -> None:
    front = (run_copy / "front.csv").read_text()
    (run_copy / "front.csv").unlink()
    shown = text(section(report(run_copy, capsys), "front"))
    assert f"hwnas front {run_copy}" in shown
    for line in front.splitlines()[1:]:
        assert line.split(",")[0] in shown
    assert not (run_copy / "front.csv").exists()


@pytest.mark.parametrize("case", ["missing", "file", "no config", "damaged config"])
def test_report_bad_input(case: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "run"
    if case == "file":
        path.write_text("not a directory\n")
    elif case != "missing":
        path.mkdir()
        if case == "damaged config":
            (path / "config.yaml").write_text("name: [unclosed\n")
    before = files_of(tmp_path)
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(path) in err, err
    assert files_of(tmp_path) == before
    assert not (path / "report.html").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_dashboard_serves_the_study_read_only(run_copy: Path) -> None:
    from hwnas.studies._readonly import load_read_only
    n_trials = len(load_read_only(run_copy).trials)
    journal = (run_copy / "study.journal").read_bytes()
    before = files_of(run_copy)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "hwnas", "dashboard", str(run_copy),
                                "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = get_json(f"{base}/api/studies")["study_summaries"]
                break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the dashboard did not answer in 60 s"
                time.sleep(0.2)
        assert [s["study_name"] for s in studies] == ["hwnas"]
        detail = get_json(f"{base}/api/studies/{studies[0]['study_id']}")
        assert len(detail["trials"]) == n_trials > 0
        # Its buttons cannot change the study.
        request = urllib.request.Request(f"{base}/api/studies/{studies[0]['study_id']}",
                                         method="DELETE", data=b"{}",
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 403
        assert len(get_json(f"{base}/api/studies")["study_summaries"]) == 1
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"{base}/dashboard/" in out and err == ""
    assert (run_copy / "study.journal").read_bytes() == journal
    assert files_of(run_copy) == before


def test_dashboard_port_in_use(run_copy: Path, capsys) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["dashboard", str(run_copy), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"port {port}" in err and "in use" in err


@pytest.mark.parametrize("case", ["no study", "not a run directory"])
def test_dashboard_bad_input(case: str, run_copy: Path, tmp_path: Path, capsys) -> None:
    if case == "no study":
        (run_copy / "study.journal").unlink()
        path = run_copy
    else:
        path = tmp_path / "elsewhere"
        path.mkdir()
    before = files_of(path)
    assert main(["dashboard", str(path), "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert ("no study yet" if case == "no study" else "not a run directory") in err
    assert files_of(path) == before


def test_report_reads_the_flat_export_json(run_copy: Path, capsys) -> None:
    """export.json as the first exporter wrote it: one flat record of model.nnp."""
    key = json.loads((run_copy / "selected.json").read_text())["key"]
    (run_copy / "export.json").write_text(json.dumps({
        "model": "model.nnp", "key": key, "network": "net", "input": "x", "output": "y",
        "input_shape": [-1, 1, 8, 8], "test_accuracy": 0.1917, "test_examples": 120,
        "max_abs_diff": 2.98e-7}))
    export = text(section(report(run_copy, capsys), "export"))
    assert "model.nnp" in export and "19.17 %" in export and "2.98e-07" in export
    assert "inherited from the supernet" in export and key in export


def test_report_of_a_selected_subnet_not_yet_retrained(run_copy: Path, capsys) -> None:
    shutil.rmtree(run_copy / "retrain")
    html = report(run_copy, capsys)
    assert f"hwnas retrain {run_copy}" in text(section(html, "retrained"))


def test_dashboard_interrupted_while_starting_just_stops(run_copy: Path, capsys, monkeypatch):
    import hwnas.run.dashboard

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(hwnas.run.dashboard, "serve", interrupted)
    assert main(["dashboard", str(run_copy)]) == 130
    assert capsys.readouterr().err.strip() == "hwnas: interrupted"  # nothing to resume


def test_dashboard_on_every_address_prints_a_usable_url(run_copy: Path, monkeypatch):
    import hwnas.run.dashboard
    from hwnas.run import RunDir

    class Server:
        server_port = 8123

        def serve_forever(self):
            raise KeyboardInterrupt

        def server_close(self):
            pass

    monkeypatch.setattr(hwnas.run.dashboard, "dashboard_server", lambda *args: Server())
    urls: list[str] = []
    hwnas.run.dashboard.serve(RunDir.open(run_copy), "0.0.0.0", 0, announce=urls.append)
    assert urls == [f"http://{socket.gethostname()}:8123/dashboard/"]


def test_source_state_names_the_commit_and_the_changed_tracked_files(tmp_path: Path) -> None:
    from hwnas.run.source import source_state

    assert source_state(tmp_path) is None  # not a checkout
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}
    (tmp_path / "pkg").mkdir()
    for name in ("pkg/a.py", "b.py"):
        (tmp_path / name).write_text("1\n")
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "x"]):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, env=env)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    assert source_state(tmp_path) == {"commit": head, "modified": []}
    (tmp_path / "b.py").write_text("2\n")
    (tmp_path / "pkg" / "new.py").write_text("untracked\n")
    assert source_state(tmp_path) == {"commit": head, "modified": [" M b.py"]}
    assert source_state(tmp_path / "pkg", ".") == {"commit": head, "modified": []}
