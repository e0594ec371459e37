"""Lightning Fabric for pretraining and fine-tuning, with its options checked before any process starts.

Fabric's own errors for a bad option come as tracebacks from inside Lightning, sometimes once per
process, and some settings it silently replaces (``16-mixed`` becomes ``bf16-mixed`` on CPU). Here
every option is checked first, against the choices this package's loops are written for, and the
error says what to pass instead.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from cardiolens.errors import CardiolensError

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "ddp")  # the loops are scripts run once per process: no spawn/fork strategies
ACCELERATORS = ("cpu", "gpu", "cuda", "auto")
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")


def _on_cpu(accelerator: str) -> bool:
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())


def check_parallel_options(accelerator: str, devices: Any, num_nodes: Any, strategy: str, precision: str) -> None:
    """Refuse options the training loops cannot run, before any process is started.

    Raises:
        CardiolensError: devices or nodes below 1, an unknown strategy, accelerator or precision, a GPU
            asked for where none is visible, or 16-bit mixed precision on CPU.
    """
    for name, value in (("devices", devices), ("num_nodes", num_nodes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CardiolensError(f"{name} must be a whole number of at least 1, got {value!r}")
    if strategy not in STRATEGIES:
        raise CardiolensError(
            f"strategy {strategy!r} is not supported; choose auto (Lightning picks: one process per device, "
            "DDP when there are several) or ddp (--devices processes per node, each running this command)"
        )
    if accelerator not in ACCELERATORS:
        raise CardiolensError(f"accelerator {accelerator!r} is not supported; choose one of {', '.join(ACCELERATORS)}")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise CardiolensError(f"accelerator {accelerator}: torch sees no GPU on this machine; use --accelerator cpu")
    if precision not in PRECISIONS:
        raise CardiolensError(f"precision {precision!r} is not supported; choose one of {', '.join(PRECISIONS)}")
    if precision == "16-mixed" and _on_cpu(accelerator):
        raise CardiolensError("precision 16-mixed needs a GPU; on CPU choose 32-true or bf16-mixed")


def check_launch_environment(accelerator: str, devices: int, num_nodes: int) -> None:
    """Refuse to start processes that could not meet (call it before reading data: it is cheap).

    Raises:
        CardiolensError: a launcher (torchrun) whose number of processes differs from ``devices x
            num_nodes``, or several nodes without the addresses that join them.
    """
    processes = devices * num_nodes
    launched = os.environ.get("WORLD_SIZE")
    if launched is not None and launched.isdigit() and int(launched) != processes:
        raise CardiolensError(
            f"started by a launcher (torchrun) with WORLD_SIZE={launched}, but --devices {devices} x --num_nodes "
            f"{num_nodes} is {processes} process(es): pass --devices (processes per node) and --num_nodes to match, "
            "or every process would run the whole job on its own"
        )
    if num_nodes > 1 and launched is None and "MASTER_ADDR" not in os.environ:
        raise CardiolensError(
            f"--num_nodes {num_nodes}: run the same command on every node with MASTER_ADDR, MASTER_PORT and "
            "NODE_RANK set (or start it with torchrun --nnodes); without them the first node waits for the others"
        )
    if _on_cpu(accelerator) and devices > (os.cpu_count() or 1):
        log.warning(
            "%d processes on a machine with %d CPU cores: they share the cores, which is slower than fewer",
            devices,
            os.cpu_count() or 1,
        )


def launch_fabric(accelerator: str, devices: int, num_nodes: int, strategy: str, precision: str) -> Any:
    """A launched Lightning Fabric; the caller has run :func:`check_parallel_options` and
    :func:`check_launch_environment` first, before its slower checks of data and run folder."""
    from lightning.fabric import Fabric

    fabric = Fabric(
        accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy, precision=precision
    )
    fabric.launch()
    return fabric


def is_main_process() -> bool:
    """True in the process that reports (global rank 0; also when no Fabric was launched)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


__all__ = [
    "ACCELERATORS",
    "PRECISIONS",
    "STRATEGIES",
    "check_launch_environment",
    "check_parallel_options",
    "is_main_process",
    "launch_fabric",
]
