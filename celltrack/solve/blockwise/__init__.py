"""Block-wise solving: tile a candidate graph in (t, z, y, x), solve blocks colour by colour
with neighbours' decisions pinned, persist per-block results, stitch one forest.

See :func:`solve_blockwise`.
"""

from celltrack.solve.blockwise.api import BlockwiseConfig, solve_blockwise
from celltrack.solve.blockwise.blocks import BlockGrid
from celltrack.solve.blockwise.executors import (
    DaskExecutor,
    ProcessExecutor,
    SerialExecutor,
    make_executor,
)
from celltrack.solve.blockwise.schedule import BlockPartition, colour_levels
from celltrack.solve.blockwise.store import BlockResult, BlockStore

__all__ = [
    "BlockGrid",
    "BlockPartition",
    "BlockResult",
    "BlockStore",
    "BlockwiseConfig",
    "DaskExecutor",
    "ProcessExecutor",
    "SerialExecutor",
    "colour_levels",
    "make_executor",
    "solve_blockwise",
]
