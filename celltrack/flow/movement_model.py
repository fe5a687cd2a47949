"""Build the LinajeaUNet of the movement-vector stage (alone or with an indicator head)."""

from __future__ import annotations

from collections.abc import Sequence

from celltrack.config.movement import MovementConfig
from celltrack.errors import InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size
from celltrack.nn.linajea_unet import LinajeaUNet
from celltrack.nn.seeding import seeded_build
from celltrack.nn.unet import pool_factors_for

__all__ = ["build_movement_model", "check_movement_model"]


def build_movement_model(
    cfg: MovementConfig,
    voxel_size: Sequence[float],
    *,
    two_d: bool = False,
    seed: int | None = None,
    with_indicator: bool = False,
) -> LinajeaUNet:
    """Build an untrained movement-vector U-Net for data of this voxel size.

    Parameters
    ----------
    cfg : MovementConfig
        ``window`` (frames), ``model`` (widths) and ``target.max_displacement_um`` (µm,
        the output scale) are used.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm; sets the anisotropy-aware pooling.
    two_d : bool
        Build a 2D+t (Z = 1) model: movement (y, x).
    seed : int or None
        Seed of the weight initialisation (torch's global random state is left as it
        was); None draws from the global generator.
    with_indicator : bool
        Add the cell-indicator head (Linajea's joint model): output channel 0 is the
        indicator, then the movement components.

    Returns
    -------
    LinajeaUNet
        Heads ``('movement',)`` or ``('indicator', 'movement')``; the movement head
        starts at 0 µm ("no motion").
    """
    if not isinstance(cfg, MovementConfig):
        raise InvalidInputError(f"cfg must be a MovementConfig, got {type(cfg).__name__}")
    vs = check_voxel_size(voxel_size)
    widths = cfg.model.resolved_widths()
    factors = pool_factors_for(vs, len(widths) - 1, two_d=two_d)
    heads = ("indicator", "movement") if with_indicator else ("movement",)
    return seeded_build(
        seed,
        lambda g: LinajeaUNet(
            cfg.window,
            heads,
            widths,
            factors,
            cfg.target.max_displacement_um,
            two_d=two_d,
            generator=g,
        ),
    )


def check_movement_model(model: object, *, two_d: bool | None = None) -> LinajeaUNet:
    """Return ``model`` if it is a LinajeaUNet with a movement head (of the right kind).

    Parameters
    ----------
    model : object
        The candidate model.
    two_d : bool, optional
        Whether the data are 2D+t (Z = 1); checked against the model when given.

    Raises
    ------
    InvalidInputError
        If it is not a LinajeaUNet with a movement head.
    ShapeError
        If it is a 2D+t model for 3D data or vice versa.
    """
    if not isinstance(model, LinajeaUNet) or "movement" not in model.heads:
        heads = getattr(model, "heads", None)
        raise InvalidInputError(
            "model must be a LinajeaUNet with a 'movement' head (build_movement_model or "
            f"load_linajea_model), got {type(model).__name__}"
            + (f" with heads {list(heads)}" if heads is not None else "")
        )
    if two_d is not None and model.two_d != two_d:
        raise ShapeError(
            f"the model is {'2D+t' if model.two_d else '3D'} but the data are "
            f"{'2D+t (Z = 1)' if two_d else '3D (Z > 1)'}; train a model for these data"
        )
    return model
