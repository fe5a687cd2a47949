"""The cell-indicator network: a :class:`~celltrack.nn.linajea_unet.LinajeaUNet` with one head.

Input: the normalised frames of ``cfg.window`` around t as channels; output: the
sigmoid cell indicator ``(B, 1, Z, Y, X)``, starting near
:data:`celltrack.nn.linajea_unet.INITIAL_INDICATOR`.
Pooling keeps z until the volume is near isotropic (:func:`celltrack.nn.pool_factors_for`);
2D+t models use (1, 3, 3) kernels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celltrack.config.indicator import IndicatorConfig
from celltrack.errors import InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size
from celltrack.nn.linajea_unet import LinajeaUNet
from celltrack.nn.seeding import seeded_build
from celltrack.nn.unet import pool_factors_for

__all__ = ["build_indicator_model", "check_indicator_model"]

def build_indicator_model(
    cfg: IndicatorConfig,
    voxel_size: Sequence[float],
    *,
    two_d: bool = False,
    seed: int | None = None,
) -> LinajeaUNet:
    """A freshly initialised indicator U-Net.

    Parameters
    ----------
    cfg : IndicatorConfig
        ``window`` (input frames) and ``model`` (widths or preset).
    voxel_size : sequence of 3 float
        (z, y, x) µm of the data; sets the pooling factors.
    two_d : bool
        Build for 2D+t data (Z = 1).
    seed : int, optional
        Seed of the weight initialisation (torch's global state is left alone); default
        ``cfg.train.seed``.

    Returns
    -------
    LinajeaUNet
        ``heads == ('indicator',)``.
    """
    if not isinstance(cfg, IndicatorConfig):
        raise InvalidInputError(f"cfg must be an IndicatorConfig, got {type(cfg).__name__}")
    vs = check_voxel_size(voxel_size)
    widths = cfg.model.resolved_widths()
    factors = pool_factors_for(vs, len(widths) - 1, two_d=two_d)
    seed = cfg.train.seed if seed is None else seed
    model = seeded_build(
        seed,
        lambda g: LinajeaUNet(
            cfg.window, ("indicator",), widths, factors, two_d=two_d, generator=g
        ),
    )
    return model


def check_indicator_model(model: Any, frame_shape: Sequence[int] | None = None) -> LinajeaUNet:
    """Check that ``model`` is a LinajeaUNet with an indicator head fitting the frames.

    Parameters
    ----------
    model : object
        The model to check.
    frame_shape : sequence of 3 int, optional
        (Z, Y, X) of the movie's frames; a 2D model refuses Z > 1 and a 3D model that
        pools z refuses Z = 1.

    Raises
    ------
    InvalidInputError
        If it is not a LinajeaUNet with an ``indicator`` head.
    ShapeError
        If it does not fit the frames.
    """
    if not isinstance(model, LinajeaUNet):
        raise InvalidInputError(
            f"the indicator detector needs a LinajeaUNet with an 'indicator' head (see "
            f"build_indicator_model), got {type(model).__name__}"
        )
    if "indicator" not in model.heads:
        raise InvalidInputError(
            f"this LinajeaUNet has the heads {list(model.heads)}, not 'indicator'; build one "
            "with build_indicator_model"
        )
    if frame_shape is not None:
        z = int(frame_shape[0])
        if model.two_d and z > 1:
            raise ShapeError(
                f"a 2D+t indicator model (two_d=True) got frames with Z = {z}; build a 3D "
                "model (two_d=False) for 3D data"
            )
        if not model.two_d and z == 1 and model.unet.divisor[0] > 1:
            raise ShapeError(
                "a 3D indicator model that pools z got 2D+t frames (Z = 1); build it with "
                "two_d=True"
            )
    return model
