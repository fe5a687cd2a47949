"""Larger than memory: every stage from the movie to the candidate graph, block by block.

- :class:`BlockGrid`, :func:`receptive_halo` (:mod:`.blocks`): block grids aligned to a
  network's pooling with a halo of its receptive radius;
- :func:`predict_blockwise` (:mod:`.predict`): detection probabilities, flow, the cell
  indicator or movement vectors written block by block into a chunked Zarr array,
  resumable, on local processes or dask;
- :mod:`.intensity`: whole-frame percentile normalisation from per-block summaries;
- :mod:`.norms`: whole-frame GroupNorm statistics gathered block by block;
- :func:`extract_spots_blockwise` (:mod:`.spots`): spots from stored probabilities, block
  by block with a halo, equal to whole-frame extraction;
- :func:`extract_indicator_spots_blockwise` (:mod:`.indicator_spots`): the maxima of a
  stored cell indicator, block by block, equal to the whole-frame maxima;
- :func:`displace_from_store`, :func:`parents_from_vector_store` (:mod:`.parents`):
  predicted parent positions from a stored flow or stored movement vectors;
- :func:`detect_blockwise`, :func:`detect_indicator_blockwise`,
  :func:`predict_parents_blockwise` (:mod:`.detect`): the Pipeline's block-wise detection
  and motion stages (store, spots, annotations merged);
- :func:`build_candidates_blockwise`, :func:`candidate_graph_blockwise`
  (:mod:`.candidates`): the candidate graph per child frame, written to GEFF.

Names load on first use, so importing :mod:`celltrack.scale` does not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "Block",
    "BlockGrid",
    "BlockwiseResult",
    "FrameNormalization",
    "build_candidates_blockwise",
    "candidate_graph_blockwise",
    "detect_blockwise",
    "detect_indicator_blockwise",
    "displace_from_store",
    "extract_indicator_spots_blockwise",
    "extract_spots_blockwise",
    "indicator_halo",
    "parents_from_vector_store",
    "predict_blockwise",
    "predict_parents_blockwise",
    "receptive_halo",
    "spot_halo",
]

_WHERE = {
    "Block": "celltrack.scale.blocks",
    "BlockGrid": "celltrack.scale.blocks",
    "receptive_halo": "celltrack.scale.blocks",
    "BlockwiseResult": "celltrack.scale.predict",
    "predict_blockwise": "celltrack.scale.predict",
    "FrameNormalization": "celltrack.scale.intensity",
    "extract_spots_blockwise": "celltrack.scale.spots",
    "spot_halo": "celltrack.scale.spots",
    "extract_indicator_spots_blockwise": "celltrack.scale.indicator_spots",
    "indicator_halo": "celltrack.scale.indicator_spots",
    "displace_from_store": "celltrack.scale.parents",
    "parents_from_vector_store": "celltrack.scale.parents",
    "detect_blockwise": "celltrack.scale.detect",
    "detect_indicator_blockwise": "celltrack.scale.detect",
    "predict_parents_blockwise": "celltrack.scale.detect",
    "build_candidates_blockwise": "celltrack.scale.candidates",
    "candidate_graph_blockwise": "celltrack.scale.candidates",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'celltrack.scale' has no attribute '{name}'")
    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
