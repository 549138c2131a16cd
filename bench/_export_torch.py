"""The PyTorch side of ``bench_export.py``, and the timing helpers both sides share.

``torch_worker`` is what ``bench_export.py --torch-worker`` runs in the PyTorch
environment (``.venv-torch``): it imports neither nnabla nor hwnas, so this
module must not either. ``TorchWorker`` drives it from the nnabla side, and
``torch_python`` makes that environment when missing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

TORCH_VENV = Path(__file__).resolve().parent.parent / ".venv-torch"
TORCH_PYTHON = "3.11"
TORCH_REQUIREMENT = "torch==2.13.0"
#: Outputs of nnabla and PyTorch on the same weights and inputs must agree this closely.
TORCH_TOLERANCE = 1e-4


def thread_times(forward: Callable[[], object], warmup: int, calls: int) -> list[int]:
    for _ in range(warmup):
        forward()
    times = []
    for _ in range(calls):
        start = time.thread_time_ns()
        forward()
        times.append(time.thread_time_ns() - start)
    return times


def breakdown_category(kind: str, kernel: int) -> str:
    """One name per kind of layer, shared by both frameworks' time breakdowns."""
    if kind == "depthwise":
        return "depthwise conv"
    if kind == "conv":
        return "1x1 conv" if kernel == 1 else "kxk conv"
    return kind


# ---------------------------------------------------------------- the PyTorch side


def torch_worker() -> None:
    """Serves JSON-line requests: ``load`` the chains, ``time`` one, ``breakdown`` one."""
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)

    class ConvBNReLU(nn.Module):
        def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                     act: bool = True) -> None:
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups,
                                  bias=False)
            self.bn = nn.BatchNorm2d(cout, eps=1e-5)
            self.act = act

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.bn(self.conv(x))
            return torch.relu(h) if self.act else h

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, kernel: int, expansion: int,
                     stride: int) -> None:
            super().__init__()
            hidden = cin * expansion
            self.residual = stride == 1 and cin == cout
            self.expand = ConvBNReLU(cin, hidden, 1)
            self.depthwise = ConvBNReLU(hidden, hidden, kernel, stride, groups=hidden)
            self.project = ConvBNReLU(hidden, cout, 1, act=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.project(self.depthwise(self.expand(x)))
            return h + x if self.residual else h

    class Chain(nn.Module):
        def __init__(self, spec: dict) -> None:
            super().__init__()
            self.stem = ConvBNReLU(spec["input_shape"][0], spec["stem_channels"], 3)
            self.blocks = nn.ModuleDict({
                b["name"]: InvertedResidual(b["in"], b["out"], b["kernel"], b["expansion"],
                                            b["stride"])
                for b in spec["blocks"]})
            self.head = ConvBNReLU(spec["blocks_out"], spec["head_channels"], 1)
            self.fc = nn.Linear(spec["head_channels"], spec["n_classes"])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.stem(x)
            for block in self.blocks.values():
                h = block(h)
            return self.fc(self.head(h).mean(dim=(2, 3)))

    def folded(model: Chain) -> Chain:
        import copy

        model = copy.deepcopy(model)
        for module in list(model.modules()):
            if isinstance(module, ConvBNReLU):
                module.conv = torch.nn.utils.fusion.fuse_conv_bn_eval(module.conv, module.bn)
                module.bn = nn.Identity()
        return model

    def category(module: nn.Module) -> str | None:
        if isinstance(module, nn.Conv2d):
            depthwise = module.groups > 1 and module.groups == module.in_channels
            return breakdown_category("depthwise" if depthwise else "conv",
                                      module.kernel_size[0])
        if isinstance(module, nn.BatchNorm2d):
            return "batch norm"
        if isinstance(module, nn.Linear):
            return "affine"
        return None

    def breakdown(model: nn.Module, x: torch.Tensor, calls: int) -> dict[str, float]:
        spent: dict[str, int] = defaultdict(int)
        starts: dict[nn.Module, int] = {}

        def pre(module: nn.Module, args) -> None:
            starts[module] = time.thread_time_ns()

        def post(module: nn.Module, args, out) -> None:
            spent[category(module)] += time.thread_time_ns() - starts[module]

        with torch.inference_mode():
            model(x)  # warm, before any hook counts
        handles = []
        for module in model.modules():
            if category(module) is not None:
                handles += [module.register_forward_pre_hook(pre),
                            module.register_forward_hook(post)]
        with torch.inference_mode():
            total = sum(thread_times(lambda: model(x), 0, calls))
        for handle in handles:
            handle.remove()
        out = {k: v / calls / 1e6 for k, v in spent.items()}
        out["other"] = total / calls / 1e6 - sum(out.values())
        return out

    models: list[dict[str, nn.Module]] = []
    inputs: list[torch.Tensor] = []
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "load":
            reply = []
            for case in request["cases"]:
                model = Chain(case["spec"]).eval()
                weights = np.load(case["weights"])
                model.load_state_dict({k: torch.from_numpy(weights[k]) for k in weights.files},
                                      strict=True)
                x = torch.from_numpy(np.load(case["inputs"]))
                want = np.load(case["outputs"])
                pair = {"torch_eager": model, "torch_folded": folded(model)}
                row = {}
                for variant, m in pair.items():
                    with torch.inference_mode():
                        got = m(x).numpy()
                    row[variant] = {"max_abs_diff": float(np.max(np.abs(got - want))),
                                    "agree": bool(np.allclose(got, want, atol=TORCH_TOLERANCE,
                                                              rtol=TORCH_TOLERANCE))}
                models.append(pair)
                inputs.append(x)
                reply.append(row)
            answer = {"torch_version": torch.__version__, "threads": torch.get_num_threads(),
                      "cases": reply}
        elif request["op"] == "time":
            model, x = models[request["case"]][request["variant"]], inputs[request["case"]]
            with torch.inference_mode():
                answer = {"ns": thread_times(lambda m=model, x=x: m(x), request["warmup"],
                                             request["calls"])}
        elif request["op"] == "breakdown":
            model, x = models[request["case"]][request["variant"]], inputs[request["case"]]
            answer = {"ms": breakdown(model, x, request["calls"])}
        else:
            answer = {"error": f"unknown op {request['op']!r}"}
        print(json.dumps(answer), flush=True)


class TorchWorker:
    """The PyTorch side as a subprocess of the PyTorch environment's interpreter."""

    def __init__(self, python: Path, stderr: Path, script: Path) -> None:
        """Runs ``script --torch-worker`` (``bench_export.py``) under ``python``."""
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.stderr = stderr
        with open(stderr, "w") as err:  # a file, so that a chatty worker never blocks on a pipe
            self.proc = subprocess.Popen([str(python), str(script), "--torch-worker"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, text=True, env=env)

    def ask(self, **request) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"PyTorch worker died: {self.stderr.read_text()[-1500:]}")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# ---------------------------------------------------------------- its environment


def torch_python() -> tuple[Path | None, str]:
    """The PyTorch environment's interpreter, made when missing; (None, why) if impossible."""
    python = TORCH_VENV / "bin" / "python"
    if not python.is_file():
        base = find_python(TORCH_PYTHON)
        if base is None:
            return None, (f"no Python {TORCH_PYTHON} found (PATH or pyenv) to make "
                          f"{TORCH_VENV.name}; this machine's PyTorch wheel is for "
                          f"Python {TORCH_PYTHON}")
        made = subprocess.run([base, "-m", "venv", str(TORCH_VENV)], capture_output=True,
                              text=True)
        if made.returncode != 0:
            return None, f"could not make {TORCH_VENV}: {made.stderr.strip()[-500:]}"
    probe = subprocess.run([str(python), "-c", "import torch, numpy"], capture_output=True,
                           text=True)
    if probe.returncode != 0:
        print(f"installing {TORCH_REQUIREMENT} into {TORCH_VENV.name} ...", flush=True)
        pip = subprocess.run([str(python), "-m", "pip", "install", "-q", TORCH_REQUIREMENT,
                              "numpy"], capture_output=True, text=True)
        if pip.returncode != 0:
            return None, (f"pip install {TORCH_REQUIREMENT} failed in {TORCH_VENV.name}: "
                          f"{(pip.stderr or pip.stdout).strip()[-800:]}")
    return python, ""


def find_python(version: str) -> str | None:
    found = shutil.which(f"python{version}")
    if found:
        return found
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return None
    root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
    candidates = sorted(Path(root, "versions").glob(f"{version}.*/bin/python"))
    return str(candidates[-1]) if candidates else None
