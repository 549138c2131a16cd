"""The export step: the selected subnet as model.nnp and model.onnx, each checked."""
from __future__ import annotations

from typing import Any

import nnabla as nn

from hwnas.arch import Arch
from hwnas.deploy import FORMATS, export_checked, weights_digest, write_record
from hwnas.errors import HwnasError
from hwnas.run.files import RunDir
from hwnas.run.retrain import retrained_subnet
from hwnas.run.select import selected_arch
from hwnas.run.workspace import Workspace, workspace


def export(run: RunDir, arch: Arch | None = None, *, ws: Workspace | None = None,
           formats: tuple[str, ...] = ("nnp", "onnx")) -> dict[str, Any]:
    """Writes the selected subnet (or ``arch``) as model.nnp and/or model.onnx, checks each file
    against the in-process subnet on the test split, and writes export.json (see
    :func:`hwnas.deploy.export_checked` and :func:`hwnas.deploy.write_record`).

    Returns:
        What export.json records: the subnet, its input and, per format, the file, its
        runtime, test accuracy and round-trip error.
    """
    for name in formats or [""]:
        if name not in FORMATS:
            raise HwnasError(f"unknown export format {name!r}; known: {', '.join(FORMATS)}")
    if arch is None:
        arch = selected_arch(run)
    ws = ws or workspace(run)
    try:
        ws.space.validate(arch)
    except ValueError as exc:
        raise HwnasError(str(exc)) from None
    subnet, weights = deploy_subnet(run, ws, arch)
    written = export_checked(subnet, ws.data, run.path, [f for f in FORMATS if f in formats])
    return write_record(run.path, arch, weights, weights_digest(subnet), ws.data, written)


def deploy_subnet(run: RunDir, ws: Workspace, arch: Arch) -> tuple[nn.Module, str]:
    """The subnet that export writes, and where its weights come from: "retrained" when
    ``hwnas retrain`` finished for this subnet, else "supernet" (shared weights, BN
    statistics recalibrated)."""
    subnet = retrained_subnet(run, ws.supernet, arch)
    if subnet is not None:
        return subnet, "retrained"
    ws.evaluator.recalibrate(arch)
    return ws.supernet.extract(arch), "supernet"
