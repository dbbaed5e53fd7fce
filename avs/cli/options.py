"""Options shared by several commands."""

from __future__ import annotations

import click


def _device(ctx, param, value: str) -> str:
    import torch

    try:
        device = torch.device(value)
    except RuntimeError:
        raise click.BadParameter(f"{value!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter(f"{value!r}: this torch build or machine has no CUDA device")
    return value


device_option = click.option("--device", default="cpu", show_default=True, callback=_device,
                             help="torch device, e.g. cpu, cuda, cuda:1.")
