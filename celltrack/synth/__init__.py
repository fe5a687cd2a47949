"""Synthetic 3D+t embryos with ground-truth lineages, and sparse annotations drawn from them.

:func:`make_embryo` renders a movie of textured, dividing, moving nuclei and returns it
with its true lineage (:class:`SynthDataset`); :class:`SynthConfig` sets every parameter
(``SynthConfig()`` is the small embedded default dataset, ``SynthConfig.tiny()`` is for
unit tests, ``SynthConfig.large_motion()`` for flow tests). :func:`sample_annotations`
draws the sparse ellipsoid and link annotations a person would make.
"""

from celltrack.synth.annotations import sample_annotations
from celltrack.synth.config import SynthConfig
from celltrack.synth.embryo import SynthDataset, make_embryo

__all__ = ["SynthConfig", "SynthDataset", "make_embryo", "sample_annotations"]
