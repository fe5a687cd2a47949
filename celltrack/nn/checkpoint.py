"""Checkpoints: atomic saving, and loading that never executes code (``weights_only=True``).

A checkpoint is a plain dict ``{"format": 1, "arch": {...}, "state_dict": {...},
"meta": {...}}`` where ``arch`` holds the architecture name and constructor arguments
(plain Python values), so a model can be rebuilt and checked before weights are loaded.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from celltrack._version import __version__
from celltrack.errors import CheckpointError
from celltrack.io.atomic import atomic_write_bytes

__all__ = ["load_checkpoint", "load_state", "save_checkpoint"]

_FORMAT = 1


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    arch: dict[str, Any],
    meta: dict[str, Any] | None = None,
) -> Path:
    """Save ``model``'s weights with its architecture description, atomically.

    Parameters
    ----------
    path : str or Path
        Destination file (conventionally ``*.pt``).
    model : torch.nn.Module
        The model whose ``state_dict`` is saved (moved to CPU).
    arch : dict
        ``{"name": <architecture name>, **constructor kwargs}``; plain Python values only.
    meta : dict, optional
        Extra plain values (loss history, config dump, step count, ...).
    """
    payload = {
        "format": _FORMAT,
        "arch": dict(arch),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": {"celltrack_version": __version__, **(meta or {})},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path, expected_name: str | None = None) -> dict[str, Any]:
    """Load a checkpoint dict safely (``weights_only=True``).

    Parameters
    ----------
    path : str or Path
        Checkpoint file written by :func:`save_checkpoint`.
    expected_name : str, optional
        Required ``arch["name"]`` (e.g. ``"DetectionUNet"``).

    Returns
    -------
    dict
        With keys ``arch``, ``state_dict`` and ``meta``.

    Raises
    ------
    CheckpointError
        If the file is missing, unreadable, not a celltrack checkpoint, or of another
        architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        raise CheckpointError(
            f"cannot read checkpoint '{path}' safely ({type(exc).__name__}: {exc}); "
            "it must be a celltrack checkpoint saved with save_checkpoint"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT or "arch" not in payload:
        raise CheckpointError(f"'{path}' is not a celltrack checkpoint (format {_FORMAT})")
    name = payload["arch"].get("name")
    if expected_name is not None and name != expected_name:
        raise CheckpointError(
            f"checkpoint '{path}' holds a {name!r} model, expected {expected_name!r}"
        )
    return payload


def load_state(model: torch.nn.Module, payload: dict[str, Any], source: str = "checkpoint") -> None:
    """Load ``payload['state_dict']`` into ``model``, turning mismatches into CheckpointError."""
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f"{source} does not fit this architecture ({first}); build the model from the "
            "checkpoint's own 'arch' settings"
        ) from None
