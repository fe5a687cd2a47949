"""Configuration of the CP-SAT tree-ILP linker (:class:`ILPConfig`).

Cost units
----------
All costs are dimensionless "cost units" (minimised). ``edge_weight`` is in cost units per
µm of the edge feature (``pred_distance`` by default), ``node_score_weight`` in cost units
per unit of detection score (scores lie in [0, 1]). Before CP-SAT sees them, costs are
multiplied by ``cost_scale`` and rounded to integers (see :mod:`celltrack.solve.ilp.scaling`);
reported objectives are divided back, so they are in cost units with a resolution of
``1 / cost_scale``.

Default costs
-------------
Tuned on the ASTEC *Phallusia* lineages (Pm02–Pm04; detections perturbed: positions
jittered, 5 % of nodes dropped, 5 % false nodes; ``benchmarks/bench_astec.py --tune``): of
a full grid, the point with the best division F1 among those making at least 1 % fewer
Linajea errors than a tuned greedy linker. On held-out perturbations it makes fewer errors
than greedy and laptrack, with twice laptrack's division F1. Unlike Linajea (c_D fixed at
1) the division cost is a parameter of its own; it is 0 here because divisions already
pay for the daughter's edge.

Division and persistence terms
------------------------------
The division-pair weights (``division_*_weight``) and the persistence costs
(``short_track_cost``, ``short_daughter_cost``) are 0 by default, which leaves the model
exactly Linajea's. They are meant to be learned (``celltrack.solve.fit_costs``, or
``learn: true`` in a pipeline config): once any of them is nonzero, divisions are only
possible along candidate pairs (``division_max_children``, ``division_max_cos``) and the
dominated-edge presolve is skipped.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from celltrack.config import Config

__all__ = ["NONNEGATIVE_WEIGHTS", "PAIR_WEIGHTS", "WEIGHT_FIELDS", "ILPConfig"]

#: weights of the division-pair cost (celltrack.solve.ilp.pair_cost)
PAIR_WEIGHTS = (
    "division_separation_weight",
    "division_offset_weight",
    "division_angle_weight",
    "division_ratio_weight",
)
#: every cost weight that celltrack.solve.fit_costs learns (costs are linear in them)
WEIGHT_FIELDS = (
    "node_offset",
    "node_score_weight",
    "edge_weight",
    "frame_gap_cost",
    "appear_cost",
    "split_cost",
    "disappear_cost",
    *PAIR_WEIGHTS,
    "short_track_cost",
    "short_daughter_cost",
)
#: weights that must stay ≥ 0 for the formulation to be exact
NONNEGATIVE_WEIGHTS = ("short_track_cost", "short_daughter_cost")


class ILPConfig(Config):
    """Costs, constraints and solver settings of :class:`~celltrack.solve.ilp.ILPLinker`.

    The default costs were tuned on the ASTEC *Phallusia* lineages (see the module
    docstring and ``benchmarks/bench_astec.py``). Costs are in µm-based units: rescale
    ``edge_weight`` for very different cell sizes or motion.
    """

    kind: Literal["ilp"] = Field("ilp", description="linker kind (discriminator)")
    # ---------------------------------------------------------------- costs
    node_offset: float = Field(
        -2.5,
        description="τ_V: constant cost of selecting a node (cost units); negative = reward",
    )
    node_score_weight: float = Field(
        0.0,
        description="w_V: cost per unit of the node column 'score' (cost units / score; "
        "score in [0, 1], 0 assumed when the column is absent)",
    )
    edge_feature: str = Field(
        "pred_distance",
        description="edge column whose value is priced by edge_weight (µm for "
        "'pred_distance' or 'distance')",
    )
    edge_weight: float = Field(
        0.07, description="w_E: cost per unit of edge_feature (cost units / µm)"
    )
    frame_gap_cost: float = Field(
        0.0,
        description="extra cost per skipped frame of an edge, times (frame_gap − 1) "
        "(cost units / frame); needs the edge column 'frame_gap' when nonzero",
    )
    appear_cost: float = Field(
        2.5,
        description="c_T: cost of a track start (a selected node without a selected parent; "
        "cost units); waived in the first frame, near the spatial border and where the "
        "node column 'appear_free' is True",
    )
    split_cost: float = Field(
        0.0,
        description="c_D: cost of a division (a node with two children; cost units). A daughter "
        "is linked as second child rather than starting a track while c_D + w_E · "
        "pred_distance < c_T: with the defaults up to ≈ 36 µm away",
    )
    disappear_cost: float = Field(
        1.75,
        description="c_X: cost of a track end (a selected node without children; cost "
        "units); waived in the last frame, near the spatial border and where the node "
        "column 'disappear_free' is True",
    )
    # ---------------------------------------------------------------- divisions
    division_separation_weight: float = Field(
        0.0,
        description="cost per µm of distance between the two daughters of a division "
        "(cost units / µm; negative rewards daughters that move apart); "
        "see celltrack.solve.ilp.pair_cost",
    )
    division_offset_weight: float = Field(
        0.0,
        description="cost per µm of the mother's distance from the daughters' midpoint "
        "(cost units / µm)",
    )
    division_angle_weight: float = Field(
        0.0,
        description="cost per unit of (1 + cos θ)/2, θ the angle between the daughters' "
        "displacements from the mother (cost units; the feature is 0 for opposite "
        "directions, 1 for the same)",
    )
    division_ratio_weight: float = Field(
        0.0,
        description="cost per unit of 1 − (shorter / longer daughter displacement) "
        "(cost units; the feature is 0 when both daughters move equally far)",
    )
    division_max_children: int = Field(
        8,
        ge=2,
        description="when a division term is active: a division may only join two of the "
        "mother's this many cheapest candidate children (count)",
    )
    division_max_cos: float = Field(
        0.5,
        ge=-1.0,
        le=1.0,
        description="when a division term is active: largest cosine of the angle between the "
        "two daughter displacements of a possible division (−1 … 1; 0.5 = at least 60°)",
    )
    persistence_frames: int = Field(
        2,
        ge=1,
        description="k of the persistence terms: a track or daughter of at most this many "
        "nodes counts as short (frames)",
    )
    short_track_cost: float = Field(
        0.0,
        ge=0,
        description="c_S: cost of a track that ends within persistence_frames of its start "
        "(cost units, ≥ 0; free starts and ends are not priced)",
    )
    short_daughter_cost: float = Field(
        0.0,
        ge=0,
        description="c_SD: cost per daughter of a division whose track ends within "
        "persistence_frames (cost units, ≥ 0)",
    )
    border_distance_um: float = Field(
        0.0,
        ge=0,
        description="nodes closer than this to the spatial border of attrs['roi_um'] (or of "
        "the nodes' bounding box) start and end tracks for free (µm); 0 disables",
    )
    free_first_frame: bool = Field(
        True, description="track starts in the first frame of the roi cost nothing"
    )
    # ---------------------------------------------------------------- learning
    learn: bool = Field(
        False,
        description="learn the cost weights from the annotated links before linking "
        "(celltrack.solve.fit_costs; used by the Pipeline and Project)",
    )
    # ---------------------------------------------------------------- integer scaling
    cost_scale: float = Field(
        1e6,
        gt=0,
        description="costs are multiplied by this and rounded to integers for CP-SAT "
        "(integer units per cost unit)",
    )
    # ---------------------------------------------------------------- solving
    time_limit_s: float = Field(
        60.0,
        gt=0,
        description="wall-clock budget of the solve (s): the LP gets all of it, the local "
        "steps at most a fifth each (≤ 10 s, and only while the budget lasts), CP-SAT "
        "what is left (at least 1 s)",
    )
    num_workers: int = Field(2, ge=1, description="CP-SAT worker threads (count)")
    random_seed: int = Field(0, description="CP-SAT random seed")
    presolve_edges: bool = Field(
        True,
        description="drop edges and candidate divisions whose cost can never pay off "
        "(exact dominance rules)",
    )
    use_lp: bool = Field(
        True,
        description="solve the LP relaxation first (HiGHS): gives a certified lower bound, a "
        "start solution and exact reduced-cost fixing that shrinks the CP-SAT model",
    )
    lp_components: bool = Field(
        True,
        description="solve the LP relaxation separately on each connected component of the "
        "model left after presolve and pins (small components batched into one LP); the "
        "same LP optimum and bound, usually faster",
    )
    lp_presolve: bool = Field(
        False,
        description="let HiGHS presolve the LP relaxation; off by default: on the tree ILP, "
        "already reduced by presolve_edges and the pins, it costs more than it saves",
    )
    lp_window_frames: int = Field(
        50,
        ge=0,
        description="solve the LP relaxation on overlapping time windows of this many frames "
        "(when the model spans at least two), stitched by seam repair; the bound is still "
        "certified exactly over all rows (frames; 0 = one LP)",
    )
    lp_window_overlap: int = Field(
        2, ge=0, description="frames each LP window extends into its neighbours (frames)"
    )
    lp_seam_frames: int = Field(
        2,
        ge=1,
        description="half-width of the seam repair between two LP windows: the rows within "
        "this many frames of a boundary are re-optimised with the others fixed (frames)",
    )
    local_hops: int = Field(
        4,
        ge=0,
        description="when the LP optimum is fractional: largest neighbourhood (rounds of "
        "row/variable expansion) around its fractional values that is solved exactly for a "
        "start solution and kept integral in a stronger Lagrangian bound; it starts at one "
        "round and doubles up to this while the gap stays open; 0 disables (count)",
    )
    shared_child_cuts: bool = Field(
        True,
        description="add the shared-child cuts of the short-daughter term (valid rows and "
        "auxiliary variables that keep its LP relaxation tight; the integer optimum is the "
        "same without them)",
    )
    prove_with_cpsat: bool = Field(
        False,
        description="run CP-SAT on the variables left after reduced-cost fixing even when the "
        "certified LP bound already equals the start solution's objective",
    )
    hint: bool = Field(
        True,
        description="give CP-SAT the best start solution found (LP optimum when integral, "
        "local repair, greedy completion, the caller's hint_edges)",
    )
    linearization_level: int = Field(
        2, ge=0, le=2, description="CP-SAT linearization_level (0 to 2)"
    )
    cpsat_parameters: dict[str, float | int | bool | str] = Field(
        default_factory=dict,
        description="extra CP-SAT SatParameters fields, applied last (name → value)",
    )
    log_search: bool = Field(False, description="print the CP-SAT search log")

    @property
    def uses_pairs(self) -> bool:
        """Whether a division-pair term is active (the ``pair`` block exists)."""
        return self.short_daughter_cost != 0.0 or any(
            getattr(self, name) != 0.0 for name in PAIR_WEIGHTS
        )

    @property
    def uses_division_terms(self) -> bool:
        """Whether a division-pair or persistence term is active."""
        return self.uses_pairs or self.short_track_cost != 0.0

    def weights(self) -> dict[str, float]:
        """The learnable cost weights (:data:`WEIGHT_FIELDS`) by field name."""
        return {name: float(getattr(self, name)) for name in WEIGHT_FIELDS}
