"""Sections of report.html about the chosen subnet: costs, budgets, retraining, the rank check
and export."""
from __future__ import annotations

from typing import Any

from hwnas.deploy import read_record
from hwnas.run.files import RunDir
from hwnas.run.rank_check import plot
from hwnas.run.records import (read_measured, read_rank_check, read_retrain_result,
                                 read_selected)
from hwnas.run.report_html import (Raw, code, curves, drawn_png, esc, figure, key, missing, note,
                                   number, pairs, percent, read_csv, read_json, table)
from hwnas.run.retrain import retrain_dir


#: The fields of a latency protocol, in plain words.
PROTOCOL_LABELS = (("device", "Device"), ("context", "nnabla context"),
                   ("nnabla_version", "nnabla version"), ("threads", "Threads"),
                   ("batch_size", "Batch size"), ("warmup", "Warm-up forwards"),
                   ("repeats", "Timed forwards"), ("statistic", "Statistic"),
                   ("spread", "Spread, (p75 − p25) / statistic"),
                   ("reliable", "Spread within the limit"))
STATISTICS = {"cpu_median": "the median per-call thread CPU time",
              "wall_p10": "the 10th percentile of per-call wall time",
              "wall_median": "the median per-call wall time"}
OBJECTIVE_LABELS = {"error": "Validation error", "latency_ms": "Latency (ms)",
                    "params": "Parameters", "macs": "Multiply-accumulates per image",
                    "memory_bytes": "Memory (bytes)"}


def _select_hint(run) -> str:
    return missing("Nothing selected yet (selected.json is missing)", f"hwnas select {run.path}")


def measured_latency(run, selected: dict[str, Any]) -> tuple[float, dict[str, Any]] | None:
    """The selected subnet's latency measured whole, and its protocol; None if never measured."""
    costs = selected["costs"]
    if "latency_ms_measured" in selected:
        return float(selected["latency_ms_measured"]), selected.get("measured_protocol", {})
    cached = read_measured(run).get(selected["key"])
    if cached is not None:
        return float(cached["latency_ms"]), cached.get("protocol", {})
    if costs.get("latency_source", "measured") == "measured":
        return float(costs["latency_ms"]), costs.get("protocol", {})
    return None


def _value(name: str, value: float) -> str:
    if name == "error":
        return percent(value)
    return f"{value:.4f}" if name == "latency_ms" else number(int(value))


def costs(run) -> str:
    selected = read_selected(run)
    if selected is None:
        return _select_hint(run)
    c = selected["costs"]
    predicted = c.get("latency_source") == "predicted"
    measured = measured_latency(run, selected)
    rows: list[tuple[str, Any]] = [
        ("Subnet", key(selected["key"])),
        ("Validation accuracy (supernet weights)", percent(selected["metrics"]["accuracy"])),
        ("Parameters", int(c["params"])), ("Multiply-accumulates per image", int(c["macs"])),
        ("Memory: parameters + peak activations (bytes)", int(c["memory_bytes"]))]
    if predicted:
        rows.append(("Latency predicted from the table (ms)",
                     f"{c['latency_ms']:.4f} ± {c.get('latency_uncertainty_ms', 0.0):.4f}"))
    rows.append(("Latency measured whole (ms)",
                 f"{measured[0]:.4f}" if measured else "not measured yet (hwnas select measures it)"))
    protocols = []
    if predicted:
        protocols.append(("latency table", c.get("protocol", {})))
    if measured:
        protocols.append(("whole subnet", measured[1]))
    body = pairs(rows)
    if protocols:
        body += "<h3>Measurement protocol</h3>" + table(
            [[label] + [p.get(name, "–") for _, p in protocols] for name, label in PROTOCOL_LABELS],
            ["", *(what for what, _ in protocols)])
        first = protocols[-1][1]
        statistic = STATISTICS.get(first.get("statistic"), first.get("statistic", "?"))
        body += note(f"Batch {esc(first.get('batch_size', '?'))}, {esc(first.get('warmup', '?'))} "
                     f"untimed forwards, then {esc(statistic)} over {esc(first.get('repeats', '?'))} "
                     "timed forwards of the deployed graph (batch normalization folded). A "
                     "measurement whose spread is too wide is retried, then refused.")
    command = run.config.latency.command
    if command:
        body += note(f"Measured on another device through {code(command)}.")
    calibration = (read_json(run / RunDir.LUT) or {}).get("calibration")
    if predicted and calibration:
        b = calibration["b"]
        body += note(f"Prediction: the sum of the table's units, calibrated on "
                     f"{calibration['n']} subnets measured whole: latency = "
                     f"{calibration['a']:.3f} × sum {'+' if b >= 0 else '−'} {abs(b):.4f} ms "
                     f"(residual {calibration['residual_std_ms']:.4f} ms, "
                     f"{100 * calibration['relative_std']:.1f} %).")
    return body


def budgets(run) -> str:
    selected = read_selected(run)
    limits = selected["budgets"] if selected is not None else run.config.budgets
    if not limits:
        body = note("No budgets: the most accurate subnet evaluated is selected.")
        return body if selected is not None else body + _select_hint(run)
    if selected is None:
        return table([[OBJECTIVE_LABELS.get(n, n), _value(n, v)] for n, v in limits.items()],
                     ["objective", "budget"]) + _select_hint(run)
    c = selected["costs"]
    measured = measured_latency(run, selected)
    rows = []
    for name, limit in limits.items():
        if name == "error":
            value, how = float(selected["metrics"]["error"]), "validation"
        elif name == "latency_ms":
            value, how = ((measured[0], "measured whole") if measured else
                          (float(c["latency_ms"]), c.get("latency_source", "measured")))
        else:
            value, how = float(c[name]), "counted"
        met = value <= float(limit)
        status = (Raw('<span class="ok">✓ met</span>') if met else
                  Raw(f'<span class="bad">✗ over by {esc(f"{100 * (value / limit - 1):.1f}")} %'
                      "</span>"))
        rows.append([OBJECTIVE_LABELS.get(name, name), _value(name, limit), _value(name, value),
                     how, status])
    body = table(rows, ["objective", "budget", "selected subnet", "how", "status"])
    if dict(limits) != dict(run.config.budgets):
        body += note(f"Selected under budgets given on the command line; the config's are "
                     f"{esc(dict(run.config.budgets) or 'none')}.")
    return body


def retrained(run) -> str:
    selected = read_selected(run)
    if selected is None:
        return missing("Nothing selected yet, so nothing retrained", f"hwnas select {run.path}")
    folder = retrain_dir(run, selected["key"])
    result = read_retrain_result(folder)
    if result is None:
        return missing("The selected subnet is not retrained yet (the accuracies above are the "
                       "supernet's estimates with inherited weights)", f"hwnas retrain {run.path}")
    body = table([["Validation accuracy", percent(result.get("supernet_val_accuracy")),
                   percent(result.get("val_accuracy"))],
                  ["Test accuracy", percent(result.get("supernet_test_accuracy")),
                   percent(result.get("test_accuracy"))]],
                 ["", "supernet estimate (inherited weights)", "retrained from scratch"])
    seconds = result.get("seconds")
    rows: list[tuple[str, Any]] = [("Subnet", key(result.get("key", "?"))),
                                   ("Epochs", result.get("epochs", "–")),
                                   ("Training time", f"{seconds:.1f} s" if seconds else "–")]
    rows += [(f"Recipe: {name}", value) for name, value in (result.get("recipe") or {}).items()]
    body += pairs(rows)
    where = folder.relative_to(run.path)
    log = read_csv(folder / RunDir.RETRAIN_LOG)
    if log is not None and len(log):
        body += figure(lambda: curves(log, "Retraining from scratch"),
                       f"Retraining curves ({esc(where)}/log.csv)")
    else:
        body += note(f"No retraining log ({esc(where)}/log.csv).")
    return body


def _correlation(value: float | None, interval: list[float] | None) -> str:
    if value is None:
        return "undefined (all equal)"
    return f"{value:.2f}" + (f" ({interval[0]:.2f} to {interval[1]:.2f})" if interval else "")


def _points(share: float) -> str:
    """A difference of accuracies, in percentage points."""
    return f"{100.0 * share:.2f} points"


def rank_check(run) -> str:
    record = read_rank_check(run)
    if record is None:
        return missing("No rank check yet: how far the supernet's estimates rank subnets as "
                       "training them alone would is unknown", f"hwnas rank-check {run.path}")
    rows = record["subnets"]
    seeds = record["seeds"]
    body = note(f"{len(rows)} subnets of the study, spread over the ranks of their estimates, "
                f"each trained alone for {record['recipe']['epochs']} epochs with the retrain "
                f"recipe, {seeds} seed{'s' if seeds > 1 else ''} each.")
    body += f"<p><strong>Verdict:</strong> {esc(record['verdict'])}</p>"
    body += table([[label, _correlation(record[s]["kendall_tau"],
                                        record[s]["kendall_tau_interval"]),
                    _correlation(record[s]["spearman_rho"], record[s]["spearman_rho_interval"])]
                   for s, label in (("val", "validation"), ("test", "test"))],
                  ["stand-alone accuracy", "Kendall τ (95 % interval)",
                   "Spearman ρ (95 % interval)"])
    facts: list[tuple[str, Any]] = [
        (f"Top-{record['top_k']} overlap", f"{record['top_k_overlap']:.2f}"),
        ("Regret of the selection (the best stand-alone validation accuracy of those within "
         "its budgets minus the selected subnet's)", _points(record["regret"]) if record["regret"] is not None
         else "nothing selected among them"),
        ("Seed noise (pooled sd of a subnet's validation accuracy over seeds)",
         _points(record["seed_noise_sd"]) if record["seed_noise_sd"] is not None
         else "one seed: unknown (hwnas rank-check --seeds 2)"),
        ("Kendall τ a second training of these subnets would reach against the first "
         "(modelled from the seed noise: what no estimate can much exceed)",
         f"{record['seed_ceiling']:.2f}" if record.get("seed_ceiling") is not None
         else "unknown without seed noise"),
        ("Largest estimate gap that training reversed", _points(record["trust_gap"]))]
    body += pairs(facts)
    body += figure(lambda: drawn_png(lambda p: plot(record, p)),
                   "Each subnet's estimate (inherited weights) against its accuracy trained "
                   "alone (rank_check.json; error bars: sd over seeds); the selected subnet "
                   "ringed")
    body += table([[key(r["key"]), percent(r["estimate"]), percent(r["val_accuracy"]),
                    percent(r["test_accuracy"]), r.get("within_budgets", True)] for r in rows],
                  ["subnet", "estimate (val, inherited)", "val, trained alone",
                   "test, trained alone", "within budgets"],
                  highlight=lambda row: row[0] == key(record["selected"] or ""))
    return body


def export(run) -> str:
    info = read_record(run.path)
    if info is None:
        return missing("Not exported yet (export.json is missing)", f"hwnas export {run.path}")
    formats = info["formats"]
    rows = []
    for name, f in formats.items():
        path = run / str(f.get("model", ""))
        size = f"{path.stat().st_size / 1024:.1f} KiB" if path.is_file() else "file missing"
        diff = f.get("max_abs_diff")
        rows.append([name, code(str(f.get("model", "?"))), size, f.get("runtime", "–"),
                     f.get("opset", "–"), percent(f.get("test_accuracy")),
                     "–" if diff is None else f"{diff:.3g}"])
    body = table(rows, ["format", "file", "size", "runtime", "opset", "test accuracy",
                        "max |difference|"])
    weights = {"supernet": "inherited from the supernet (batch norm recalibrated)",
               "retrained": "retrained from scratch"}.get(info.get("weights", "supernet"), "–")
    body += pairs([("Subnet", key(info.get("key", "?"))), ("Weights", weights),
                   ("Input shape", info.get("input_shape", "–")),
                   ("Test examples", info.get("test_examples", "–"))])
    body += note("Test accuracy of each file loaded by its runtime alone; max |difference|: the "
                 "largest difference of its outputs from the in-process subnet on the test split.")
    return body
