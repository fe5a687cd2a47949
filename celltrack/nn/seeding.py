"""Seeding without global side effects.

Every random step of training takes a :class:`numpy.random.Generator` (crops,
augmentation) or a :class:`torch.Generator` (weight initialisation) passed down by the
caller; nothing calls ``torch.manual_seed`` or ``np.random.seed``, so training a model
never changes the random streams of the user's own code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch

from celltrack.errors import InvalidInputError

__all__ = ["as_generator", "seeded_build", "torch_generator"]

M = TypeVar("M")


def as_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A numpy Generator: ``seed`` itself if it is one, else ``np.random.default_rng(seed)``.

    Raises
    ------
    InvalidInputError
        If ``seed`` is neither an int, a Generator nor None.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise InvalidInputError(
            f"seed must be an int, a numpy.random.Generator or None, got {type(seed).__name__}"
        )
    return np.random.default_rng(seed)


def torch_generator(seed: int) -> torch.Generator:
    """A CPU :class:`torch.Generator` seeded with ``seed`` (the global one is untouched)."""
    return torch.Generator().manual_seed(int(seed))


def seeded_build(seed: int | None, build: Callable[[torch.Generator | None], M]) -> M:
    """Build a module whose random initialisation is drawn from a generator seeded by ``seed``.

    ``build(generator)`` constructs the module and initialises its weights from
    ``generator``. Construction runs inside :func:`torch.random.fork_rng`, so the
    default initialisers torch's layers run on creation do not advance the global CPU
    stream either: the global random state is the same before and after.

    Parameters
    ----------
    seed : int or None
        Seed of the initialisation; None draws from torch's global generator (the only
        case that changes global state).
    build : callable
        ``build(generator) -> module``.
    """
    if seed is None:
        return build(None)
    with torch.random.fork_rng(devices=[]):
        return build(torch_generator(seed))
