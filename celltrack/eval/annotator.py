"""A simulated person who proofreads a :class:`~celltrack.project.Project`, and the effort curve.

The headline result of an interactive tracker is how good it gets for how much human work.
:class:`SimulatedAnnotator` stands in for the person of ELEPHANT's loop: given the ground
truth, each round it looks at the frames where the current predictions are worst and spends
at most ``clicks_per_round`` clicks there, through the project's public API only:

- reject a false prediction (``Project.proofread(ids, "reject")`` → tag ``fp``), 1 click;
- add a nucleus the model missed, with the ground truth's ellipsoid or a radius
  (``Project.add_spots`` → tag ``fn``), 1 click;
- accept a correct prediction (``Project.proofread(ids, "accept")`` → tag ``tp``), 1 click;
- approve a true link between two confirmed spots (``Project.add_link``), 1 click.

Corrections (false positives and misses, alternately, the most confident false positives
first) come before confirmations (the least confident correct predictions first), and links
come last, because corrections are what teaches the model most (they train with extra
weight). :func:`run_effort_curve` alternates annotator rounds with training, prediction over
every frame, optional linking and scoring, and returns an :class:`EffortCurve`: DET / TRA /
division F1 against the cumulative number of clicks.

Nothing here imports torch; the project does when it trains and predicts.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from celltrack._version import __version__
from celltrack.errors import CelltrackError, GraphError, InvalidInputError
from celltrack.eval.matching import check_positive, match_nodes
from celltrack.eval.scores import TrackingScores, evaluate
from celltrack.graph.tags import LINKABLE, NUCLEUS, Tag, approved_mask, tags_of
from celltrack.graph.trackgraph import TrackGraph

if TYPE_CHECKING:  # pragma: no cover
    from celltrack.project import Project

__all__ = [
    "EffortCurve",
    "EffortRow",
    "RoundReport",
    "SimulatedAnnotator",
    "run_effort_curve",
]

logger = logging.getLogger(__name__)

#: Priority classes of the annotator's actions (lower first).
_CORRECTION, _CONFIRMATION, _LINK = 0, 1, 2


@dataclass(frozen=True)
class RoundReport:
    """What the simulated annotator did in one round.

    Attributes
    ----------
    frames : list of int
        Frames the annotator looked at, worst first.
    clicks : int
        Clicks spent (``accepted + rejected + added + links``).
    accepted, rejected, added, links : int
        Predictions accepted (→ tp), rejected (→ fp), missed nuclei added (→ fn) and links
        approved.
    errors_seen : int
        False positives plus misses in the chosen frames before the edits.
    """

    frames: list[int]
    clicks: int
    accepted: int
    rejected: int
    added: int
    links: int
    errors_seen: int


class SimulatedAnnotator:
    """A person who proofreads a project against the ground truth, k clicks per round.

    Parameters
    ----------
    ground_truth : TrackGraph
        The true nuclei (positions µm; optional ``covariance`` (N, 3, 3) µm²) and links
        (edges parent → child).
    clicks_per_round : int
        Most clicks one :meth:`proofread_round` spends (≥ 1).
    frames_per_round : int
        Number of frames looked at per round: those with the most errors (false positives
        plus misses) under the current predictions; ties broken by a permutation drawn from
        ``seed`` (≥ 1).
    match_distance_um : float
        A prediction within this distance (µm) of a true nucleus (one-to-one, per frame) is
        correct; the same threshold as the scoring.
    link_clicks : bool
        Also approve true links between confirmed spots when clicks are left.
    confirm_share : float
        Fraction of the clicks (0–1) kept for accepting correct predictions even when
        errors remain (the rest fixes errors first); 0: confirm only when no error is left
        in the chosen frames. Confirmations balance the negatives a round of rejections
        teaches (extra-weighted), which keeps incremental training from losing recall.
    radius_um : float, optional
        Radius (µm) of an added nucleus when the ground truth carries no (valid)
        covariance; default: the project's ``labels.point_radius_um``.
    seed : int
        Seed of the tie-breaks (frame order, order of equally ranked misses).

    Examples
    --------
    >>> annotator = SimulatedAnnotator(gt, match_distance_um=4.0)      # doctest: +SKIP
    >>> report = annotator.proofread_round(project)                    # doctest: +SKIP
    >>> report.clicks <= annotator.clicks_per_round                    # doctest: +SKIP
    True
    """

    def __init__(
        self,
        ground_truth: TrackGraph,
        *,
        clicks_per_round: int = 30,
        frames_per_round: int = 2,
        match_distance_um: float,
        link_clicks: bool = True,
        confirm_share: float = 0.0,
        radius_um: float | None = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(ground_truth, TrackGraph):
            raise InvalidInputError(
                f"ground_truth must be a celltrack TrackGraph, got {type(ground_truth).__name__}"
            )
        for name, value in (
            ("clicks_per_round", clicks_per_round),
            ("frames_per_round", frames_per_round),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InvalidInputError(f"{name} must be an integer >= 1, got {value!r}")
        if radius_um is not None:
            check_positive(radius_um, "radius_um")
        share = float(confirm_share)
        if not 0.0 <= share <= 1.0:
            raise InvalidInputError(
                f"confirm_share must be a fraction in [0, 1], got {confirm_share!r}"
            )
        self.ground_truth = ground_truth
        self.clicks_per_round = int(clicks_per_round)
        self.frames_per_round = int(frames_per_round)
        self.match_distance_um = check_positive(match_distance_um, "match_distance_um")
        self.link_clicks = bool(link_clicks)
        self.confirm_share = share
        self.radius_um = None if radius_um is None else float(radius_um)
        self.seed = int(seed)
        self.rounds_done = 0
        self._cov = _valid_covariances(ground_truth)

    def __repr__(self) -> str:
        return (
            f"SimulatedAnnotator({self.ground_truth.num_nodes} true nuclei, "
            f"{self.clicks_per_round} clicks in {self.frames_per_round} frames per round, "
            f"match {self.match_distance_um:g} µm, seed {self.seed})"
        )

    def _rng(self, salt: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.rounds_done, salt])

    # ------------------------------------------------------------------ initial annotations
    def annotate_initial(self, project: Project, *, n_frames: int = 4, per_frame: int = 5) -> int:
        """Annotate ``per_frame`` true nuclei in each of ``n_frames`` frames (tag ``fn``).

        The frames are spread evenly over the movie's frames that hold ground truth, the
        nuclei drawn at random (``seed``). This is the starting point "from a few annotated
        nuclei" before any proofreading.

        Returns
        -------
        int
            Clicks spent (nuclei added).
        """
        gt = self.ground_truth
        frames = np.unique(gt.t)
        if frames.size == 0:
            raise InvalidInputError("the ground truth has no nuclei to annotate")
        n_frames = min(int(n_frames), frames.size)
        pick = frames[np.round(np.linspace(0, frames.size - 1, n_frames)).astype(int)]
        rng = np.random.default_rng([self.seed, 10_000])
        clicks = 0
        with project.batch():
            for t in np.unique(pick):
                rows = np.flatnonzero(gt.t == t)
                rows = rng.permutation(rows)[: int(per_frame)]
                clicks += self._add(project, int(t), np.sort(rows))
        return clicks

    def _add(self, project: Project, t: int, gt_rows: np.ndarray) -> int:
        """Add the true nuclei ``gt_rows`` (all in frame t) as ``fn`` spots; returns clicks."""
        if gt_rows.size == 0:
            return 0
        pos = self.ground_truth.positions[gt_rows]
        ok = (
            np.zeros(gt_rows.size, bool)
            if self._cov is None
            else np.all(np.isfinite(self._cov[gt_rows]), axis=(1, 2))
        )
        if ok.any():
            project.add_spots(t, pos[ok], covariance=self._cov[gt_rows[ok]])
        if not ok.all():
            project.add_spots(t, pos[~ok], radius_um=self.radius_um)
        return int(gt_rows.size)

    # ------------------------------------------------------------------ one round
    def frame_errors(self, project: Project) -> dict[int, int]:
        """False positives plus misses per frame of the ground truth, under the current spots."""
        state = self._state(project.annotations)
        return {int(t): int(e) for t, e in zip(state["frames"], state["errors"])}

    def _state(self, ann: TrackGraph) -> dict[str, Any]:
        gt = self.ground_truth
        tags = tags_of(ann)
        linkable = np.isin(tags, LINKABLE)
        cand_rows = np.flatnonzero(linkable)
        cand = ann.subgraph(nodes=linkable)
        matching = match_nodes(gt, cand, self.match_distance_um)
        gt_to_ann = np.full(gt.num_nodes, -1, np.int64)
        gt_to_ann[matching.gt_rows] = cand_rows[matching.pred_rows]
        ann_to_gt = np.full(ann.num_nodes, -1, np.int64)
        ann_to_gt[cand_rows[matching.pred_rows]] = matching.gt_rows
        false_pos = linkable & (tags == Tag.UNLABELED.value) & (ann_to_gt < 0)
        missed = gt_to_ann < 0
        frames = np.unique(gt.t)
        errors = np.zeros(frames.size, np.int64)
        if frames.size:
            fp_t = ann.t[false_pos]
            idx = np.searchsorted(frames, fp_t)
            ok = (idx < frames.size) & (frames[np.minimum(idx, frames.size - 1)] == fp_t)
            np.add.at(errors, idx[ok], 1)
            np.add.at(errors, np.searchsorted(frames, gt.t[missed]), 1)
        return {
            "tags": tags,
            "gt_to_ann": gt_to_ann,
            "ann_to_gt": ann_to_gt,
            "false_pos": false_pos,
            "missed": missed,
            "frames": frames,
            "errors": errors,
        }

    def choose_frames(self, project: Project) -> list[int]:
        """The ``frames_per_round`` frames with the most errors (seeded tie-break), worst first."""
        state = self._state(project.annotations)
        return self._choose(state)

    def _choose(self, state: dict[str, Any]) -> list[int]:
        frames, errors = state["frames"], state["errors"]
        if frames.size == 0:
            return []
        tie = self._rng(1).permutation(frames.size)
        order = np.lexsort((tie, -errors))
        chosen = order[: self.frames_per_round]
        return [int(frames[i]) for i in chosen]

    def proofread_round(self, project: Project) -> RoundReport:
        """Spend at most ``clicks_per_round`` clicks on the worst frames of ``project``.

        Parameters
        ----------
        project : Project
            The project to edit (its annotation graph: tags and approved links).

        Returns
        -------
        RoundReport
        """
        ann = project.annotations
        state = self._state(ann)
        frames = self._choose(state)
        gt = self.ground_truth
        scores = (
            np.asarray(ann.nodes["score"], np.float64)
            if "score" in ann.nodes
            else np.ones(ann.num_nodes)
        )
        actions: list[tuple[int, int, int, str, int]] = []  # (class, rank, frame#, kind, row)
        errors_seen = 0
        for k, t in enumerate(frames):
            in_t = ann.t == t
            fp_rows = np.flatnonzero(in_t & state["false_pos"])
            fp_rows = fp_rows[np.argsort(-scores[fp_rows], kind="stable")]  # confident first
            miss_rows = np.flatnonzero((gt.t == t) & state["missed"])
            miss_rows = self._rng(2 + k).permutation(miss_rows)
            errors_seen += fp_rows.size + miss_rows.size
            # corrections alternate: reject, add, reject, add, ...
            actions += [(_CORRECTION, 2 * i, k, "reject", int(r)) for i, r in enumerate(fp_rows)]
            actions += [(_CORRECTION, 2 * i + 1, k, "add", int(r)) for i, r in enumerate(miss_rows)]
            ok_rows = np.flatnonzero(
                in_t & (state["tags"] == Tag.UNLABELED.value) & (state["ann_to_gt"] >= 0)
            )
            ok_rows = ok_rows[np.argsort(scores[ok_rows], kind="stable")]  # least sure first
            actions += [(_CONFIRMATION, i, k, "accept", int(r)) for i, r in enumerate(ok_rows)]
        actions.sort(key=lambda a: (a[0], a[1], a[2]))
        budget = self.clicks_per_round
        fixes = [a for a in actions if a[0] == _CORRECTION]
        confirms = [a for a in actions if a[0] == _CONFIRMATION]
        n_confirm = min(len(confirms), round(self.confirm_share * budget))
        n_fix = min(len(fixes), budget - n_confirm)
        n_confirm = min(len(confirms), budget - n_fix)  # clicks left by too few errors
        chosen = fixes[:n_fix] + confirms[:n_confirm]
        rejected = [a[4] for a in chosen if a[3] == "reject"]
        accepted = [a[4] for a in chosen if a[3] == "accept"]
        added = [a[4] for a in chosen if a[3] == "add"]
        n_links = 0
        with project.batch():
            if rejected:
                project.proofread(ann.ids[np.asarray(rejected)], "reject")
            if accepted:
                project.proofread(ann.ids[np.asarray(accepted)], "accept")
            by_frame: dict[int, list[int]] = {}
            for r in added:
                by_frame.setdefault(int(gt.t[r]), []).append(r)
            for t, rows in by_frame.items():
                self._add(project, t, np.asarray(rows, np.int64))
            left = budget - len(chosen)
            if self.link_clicks and left > 0:
                n_links = self._approve_links(project, frames, left)
        self.rounds_done += 1
        report = RoundReport(
            frames=frames,
            clicks=len(chosen) + n_links,
            accepted=len(accepted),
            rejected=len(rejected),
            added=len(added),
            links=n_links,
            errors_seen=int(errors_seen),
        )
        logger.info("simulated annotator round %d: %s", self.rounds_done, report)
        return report

    def _approve_links(self, project: Project, frames: Sequence[int], budget: int) -> int:
        """Approve true links touching ``frames`` between confirmed spots; returns clicks."""
        gt = self.ground_truth
        if gt.num_edges == 0 or budget <= 0:
            return 0
        ann = project.annotations
        tags = tags_of(ann)
        confirmed = np.isin(tags, NUCLEUS)
        cand_rows = np.flatnonzero(confirmed)
        matching = match_nodes(gt, ann.subgraph(nodes=confirmed), self.match_distance_um)
        gt_to_ann = np.full(gt.num_nodes, -1, np.int64)
        gt_to_ann[matching.gt_rows] = cand_rows[matching.pred_rows]
        src, tgt = gt.edge_index()
        a, b = gt_to_ann[src], gt_to_ann[tgt]
        touch = np.isin(gt.t[src], frames) | np.isin(gt.t[tgt], frames)
        usable = np.flatnonzero((a >= 0) & (b >= 0) & touch)
        if usable.size == 0:
            return 0
        approved = set()
        if ann.num_edges:
            s, d = ann.edge_index()
            ok = approved_mask(ann)
            approved = set(zip(ann.ids[s[ok]].tolist(), ann.ids[d[ok]].tolist()))
        clicks = 0
        for e in usable:
            parent, child = int(ann.ids[a[e]]), int(ann.ids[b[e]])
            if (parent, child) in approved:
                continue
            try:
                project.add_link(parent, child, approved=True)
            except GraphError:  # conflicts with a link approved before: a person skips it
                continue
            clicks += 1
            if clicks >= budget:
                break
        return clicks


def _valid_covariances(gt: TrackGraph) -> np.ndarray | None:
    """The ground truth's covariances with invalid ones (not SPD) set to NaN; None if absent."""
    if "covariance" not in gt.nodes or gt.num_nodes == 0:
        return None
    cov = np.array(gt.nodes["covariance"], dtype=np.float64)
    finite = np.all(np.isfinite(cov), axis=(1, 2))
    sym = np.all(np.abs(cov - np.swapaxes(cov, 1, 2)) <= 1e-9, axis=(1, 2))
    good = finite & sym
    if good.any():
        good[good] = np.linalg.eigvalsh(cov[good])[:, 0] > 0
    cov[~good] = np.nan
    return cov


# ---------------------------------------------------------------------------- effort curve
@dataclass(frozen=True)
class EffortRow:
    """Scores after one round of the loop.

    Attributes
    ----------
    round : int
        0 = the starting state (before any proofreading), then 1, 2, …
    clicks, cumulative_clicks : int
        Clicks of this round and of all rounds so far (round 0: the initial annotations).
    spots : int
        Spots scored (tags tp, fn, unlabeled).
    det, tra, division_f1 : float
        CTC DET and TRA and division F1 against the ground truth (NaN when undefined).
    false_positives, misses : int
        Unmatched predicted and true nuclei of the scoring.
    seconds : float
        Wall-clock time of the round (edits, training, prediction, linking, scoring).
    accepted, rejected, added, links : int
        The annotator's actions in this round.
    """

    round: int
    clicks: int
    cumulative_clicks: int
    spots: int
    det: float
    tra: float
    division_f1: float
    false_positives: int
    misses: int
    seconds: float
    accepted: int = 0
    rejected: int = 0
    added: int = 0
    links: int = 0


@dataclass
class EffortCurve:
    """Scores of a human-in-the-loop run against the number of clicks.

    Attributes
    ----------
    rows : list of EffortRow
        One row per round, round 0 first.
    label : str
        Name of the run (legend of :func:`celltrack.eval.plots.plot_effort_curve`).
    parameters : dict
        Settings of the run (annotator, training, matching threshold).
    version : str
        celltrack version.
    """

    rows: list[EffortRow] = field(default_factory=list)
    label: str = "celltrack"
    parameters: dict[str, Any] = field(default_factory=dict)
    version: str = __version__

    def column(self, name: str) -> np.ndarray:
        """One field of every row as an array (e.g. ``"det"``)."""
        if name not in EffortRow.__dataclass_fields__:
            raise InvalidInputError(
                f"unknown effort-curve column {name!r}; one of "
                f"{list(EffortRow.__dataclass_fields__)}"
            )
        return np.asarray([getattr(r, name) for r in self.rows])

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dictionary (NaN becomes None)."""
        rows = [{k: _jsonable(v) for k, v in asdict(r).items()} for r in self.rows]
        return {
            "label": self.label,
            "rows": rows,
            "parameters": self.parameters,
            "version": self.version,
        }

    def to_json(self, path: str | Path | None = None, *, indent: int = 2) -> str:
        """The curve as JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent, default=str)
        if path is not None:
            from celltrack.io.atomic import atomic_write_text

            atomic_write_text(Path(path), text)
        return text

    def table(self) -> str:
        """A readable text table of the rows."""
        head = ("round", "clicks", "total", "spots", "DET", "TRA", "div F1", "FP", "FN", "s")
        lines = ["  ".join(f"{h:>7}" for h in head)]
        for r in self.rows:
            vals = (
                r.round,
                r.clicks,
                r.cumulative_clicks,
                r.spots,
                _f(r.det),
                _f(r.tra),
                _f(r.division_f1),
                r.false_positives,
                r.misses,
                f"{r.seconds:.1f}",
            )
            lines.append("  ".join(f"{v!s:>7}" for v in vals))
        return "\n".join(lines)


def _f(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}"


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def _predicted_graph(project: Project, linked: bool) -> TrackGraph:
    """What is scored: the linkable spots, with the last tracks' links when linked."""
    if linked and project.tracks is not None:
        tracks = project.tracks
        return tracks.subgraph(nodes=np.isin(tags_of(tracks), LINKABLE))
    ann = project.annotations
    return ann.subgraph(nodes=np.isin(tags_of(ann), LINKABLE))


def _score(gt: TrackGraph, pred: TrackGraph, distance: float) -> TrackingScores | None:
    if pred.num_nodes == 0:
        return None
    try:
        return evaluate(gt, pred, distance)
    except InvalidInputError:  # no shared frame
        return None


def _can_predict(project: Project) -> bool:
    """A trained model exists, or the detector needs none (``detection.kind: classical``)."""
    kind = getattr(getattr(project.config, "detection", None), "kind", "ellipsoid")
    return kind == "classical" or project.detection_model is not None


def _train(
    project: Project, frames: Sequence[int], train: str, steps: int | None, epochs: int | None
) -> None:
    reviewed = ~np.isin(tags_of(project.annotations), (Tag.UNLABELED.value,))
    have = set(np.unique(project.annotations.t[reviewed]).tolist())
    if train == "batch":
        if have:
            project.train_detection(incremental=False, epochs=epochs)
        return
    for t in frames:
        if int(t) in have:
            project.train_detection(incremental=True, frame=int(t), steps=steps)


def run_effort_curve(
    project: Project,
    annotator: SimulatedAnnotator,
    *,
    rounds: int = 3,
    train: str = "incremental",
    steps: int | None = None,
    epochs: int | None = None,
    ground_truth_for_scoring: TrackGraph | None = None,
    match_distance_um: float | None = None,
    frames: Sequence[int] | None = None,
    link: bool | str | Any = False,
    initial_clicks: int = 0,
    label: str = "celltrack",
    train_initial: bool = True,
) -> EffortCurve:
    """Alternate simulated proofreading with training and prediction; score every round.

    Round 0 is the starting state: when the project has reviewed spots (e.g. from
    :meth:`SimulatedAnnotator.annotate_initial`) and ``train_initial``, the detector is
    trained on them and every frame predicted; otherwise the current spots (e.g. a
    classical detector's proposals imported as ``unlabeled``) are scored as they are. Each
    later round: the annotator edits its worst frames → training (``"incremental"``: one
    update of ``steps`` on each edited frame; ``"batch"``: ``epochs`` over every reviewed
    frame) → :meth:`Project.predict` on ``frames`` → optionally :meth:`Project.link` →
    scoring.

    Parameters
    ----------
    project : Project
        The project (edited in place).
    annotator : SimulatedAnnotator
        The simulated person.
    rounds : int
        Proofreading rounds after round 0 (≥ 0).
    train : {"incremental", "batch"}
        How the detector learns after each round.
    steps, epochs : int, optional
        Override the project's incremental steps / batch epochs.
    ground_truth_for_scoring : TrackGraph, optional
        Reference to score against (default: the annotator's ground truth).
    match_distance_um : float, optional
        Scoring threshold (µm; default the annotator's).
    frames : sequence of int, optional
        Frames to predict and score (default every frame of the movie).
    link : bool, str or linker
        False: score the spots without linking (TRA then only counts approved links);
        True: :meth:`Project.link` with the project's linker; a kind name, config or
        linker: that linker.
    initial_clicks : int
        Clicks already spent before round 0 (e.g. the initial annotations), counted in the
        cumulative clicks.
    label : str
        Name of the run.
    train_initial : bool
        Train and predict at round 0 (when there are reviewed spots).

    Returns
    -------
    EffortCurve
    """
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 0:
        raise InvalidInputError(f"rounds must be an integer >= 0, got {rounds!r}")
    if train not in ("incremental", "batch"):
        raise InvalidInputError(f"train must be 'incremental' or 'batch', got {train!r}")
    gt = annotator.ground_truth if ground_truth_for_scoring is None else ground_truth_for_scoring
    if not isinstance(gt, TrackGraph):
        raise InvalidInputError(
            f"ground_truth_for_scoring must be a TrackGraph, got {type(gt).__name__}"
        )
    distance = (
        annotator.match_distance_um
        if match_distance_um is None
        else check_positive(match_distance_um, "match_distance_um")
    )
    n_frames = project.shape[0]
    frames = list(range(n_frames)) if frames is None else [int(f) for f in frames]
    if frames and gt.num_nodes:
        gt = gt.subgraph(nodes=np.isin(gt.t, frames))
    curve = EffortCurve(
        label=label,
        parameters={
            "rounds": int(rounds),
            "train": train,
            "steps": steps,
            "epochs": epochs,
            "clicks_per_round": annotator.clicks_per_round,
            "frames_per_round": annotator.frames_per_round,
            "match_distance_um": distance,
            "link_clicks": annotator.link_clicks,
            "confirm_share": annotator.confirm_share,
            "seed": annotator.seed,
            "link": link if isinstance(link, (bool, str)) else str(link),
            "initial_clicks": int(initial_clicks),
        },
    )
    total = int(initial_clicks)

    def refresh() -> None:
        for t in frames:
            project.predict(t)
        if link is not False and link is not None:
            project.link() if link is True else project.link(link)

    def record(r: int, clicks: int, report: RoundReport | None, start: float) -> None:
        linked = link is not False and link is not None
        pred = _predicted_graph(project, linked)
        s = _score(gt, pred, distance)
        nan = float("nan")
        div = s.divisions.f1 if (s is not None and s.divisions is not None) else nan
        row = EffortRow(
            round=r,
            clicks=clicks,
            cumulative_clicks=total,
            spots=int(pred.num_nodes),
            det=s.det if s is not None else (0.0 if gt.num_nodes else nan),
            tra=s.tra if s is not None else (0.0 if gt.num_nodes else nan),
            division_f1=float(div) if div is not None else nan,
            false_positives=int(s.aogm.fp_nodes) if s is not None else int(pred.num_nodes),
            misses=int(s.aogm.fn_nodes) if s is not None else int(gt.num_nodes),
            seconds=time.perf_counter() - start,
            accepted=report.accepted if report else 0,
            rejected=report.rejected if report else 0,
            added=report.added if report else 0,
            links=report.links if report else 0,
        )
        curve.rows.append(row)
        logger.info("effort curve %s: %s", label, row)

    start = time.perf_counter()
    reviewed = ~np.isin(tags_of(project.annotations), (Tag.UNLABELED.value,))
    if train_initial and reviewed.any():
        _train(project, np.unique(project.annotations.t[reviewed]).tolist(), train, steps, epochs)
    if train_initial and _can_predict(project):
        refresh()
    elif link is not False and link is not None:
        project.link() if link is True else project.link(link)
    record(0, int(initial_clicks), None, start)
    for r in range(1, int(rounds) + 1):
        start = time.perf_counter()
        report = annotator.proofread_round(project)
        total += report.clicks
        if report.clicks:
            _train(project, report.frames, train, steps, epochs)
        if not _can_predict(project):
            raise CelltrackError(
                "the detector has no model after the annotator's round: nothing reviewed to "
                "train on"
            )
        refresh()
        record(r, report.clicks, report, start)
    return curve
