"""What detection needs from a model: the :class:`Detector` protocol and its check.

Prediction and training accept any torch module that maps a normalised
``(B, 1, Z, Y, X)`` float tensor to ``(B, 3, Z, Y, X)`` class scores over (background,
periphery, centre): raw logits or log-probabilities (a softmax over the class axis
turns either into probabilities, a log-softmax into log-probabilities).
:class:`~celltrack.detect.model.DetectionUNet` is one; a user's own network is another.

Optional attributes are used when present: ``voxel_size`` (z, y, x) µm, the default
voxel size of the data; ``check_input(shape)``, which raises for an input the model
cannot take; ``arch``, the plain architecture description a checkpoint needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from celltrack.errors import InvalidInputError, ShapeError

__all__ = ["N_CLASSES", "Detector", "check_detector", "check_detector_input", "class_scores"]

N_CLASSES = 3


@runtime_checkable
class Detector(Protocol):
    """A torch module mapping ``(B, 1, Z, Y, X)`` to ``(B, 3, Z, Y, X)`` class scores."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def parameters(self, recurse: bool = True) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...

    def to(self, *args: Any, **kwargs: Any) -> Any: ...


def check_detector(model: Any) -> Detector:
    """Return ``model`` if it can serve as a detector, else raise a clear error.

    Raises
    ------
    InvalidInputError
        If ``model`` is not a :class:`torch.nn.Module`.
    """
    if not isinstance(model, torch.nn.Module) or not isinstance(model, Detector):
        raise InvalidInputError(
            "model must be a detector: a torch.nn.Module mapping a (B, 1, Z, Y, X) float "
            "tensor to (B, 3, Z, Y, X) class scores (e.g. build_model / load_model), got "
            f"{type(model).__name__}"
        )
    return model


def check_detector_input(model: Detector, shape: Sequence[int]) -> None:
    """Raise :class:`ShapeError` if ``model`` cannot take a ``(B, C, Z, Y, X)`` input.

    Uses the model's own ``check_input`` when it has one; otherwise checks the rank and
    sizes only.
    """
    check = getattr(model, "check_input", None)
    if callable(check):
        check(shape)
        return
    shape = tuple(int(s) for s in shape)
    if len(shape) != 5 or min(shape) < 1:
        raise ShapeError(f"a detector takes (B, C, Z, Y, X) tensors with sizes ≥ 1, got {shape}")


def class_scores(model: Detector, x: torch.Tensor) -> torch.Tensor:
    """Run ``model`` on ``x`` and check its output is ``(B, 3, Z, Y, X)`` like ``x``.

    Raises
    ------
    ShapeError
        If the output has another shape.
    """
    out = model(x)
    expected = (x.shape[0], N_CLASSES, *x.shape[2:])
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ShapeError(
            f"a detector must return (B, 3, Z, Y, X) class scores, here {expected}, got {got}"
        )
    return out
