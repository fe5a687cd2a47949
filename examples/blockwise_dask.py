"""Solve a large candidate graph block by block on a dask cluster (Linajea's scheme).

Usage::

    python examples/blockwise_dask.py [--frames 20] [--cells 2000] [--workers 2]
        [--scheduler tcp://host:8786] [--store DIR] [--tiny]

A synthetic candidate graph (cells drifting and dividing, missed and false detections;
:func:`celltrack.solve.blockwise.synthetic.synthetic_candidates`) is cut into blocks of
``--block`` frames × µm; blocks whose read regions overlap another's write region never
run at the same time, finished neighbours' decisions are pinned, and every block is
solved with the CP-SAT tree ILP on the dask cluster. Without ``--scheduler`` a local
cluster is started (``distributed.LocalCluster``); with it, the blocks go to your
cluster. ``--store`` keeps per-block results so an interrupted run resumes.

The stitched forest is compared with solving the whole graph at once: its objective
(from the linker's ``objective_of``) and how many edges agree.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--cells", type=int, default=2000, help="cells per frame")
    parser.add_argument("--block", type=float, nargs=4, default=(5, 1000.0, 100.0, 100.0),
                        metavar=("T", "Z", "Y", "X"), help="block size (frames, µm, µm, µm)")
    parser.add_argument("--context", type=float, nargs=4, default=(2, 20.0, 20.0, 20.0),
                        metavar=("T", "Z", "Y", "X"), help="context (frames, µm, µm, µm)")
    parser.add_argument("--workers", type=int, default=2, help="local dask workers")
    parser.add_argument("--scheduler", default=None, help="address of a running dask scheduler")
    parser.add_argument("--store", type=Path, default=None, help="per-block result folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="tiny graph, in-process cluster")
    args = parser.parse_args(argv)

    import distributed

    from celltrack.solve import BlockwiseConfig, ILPConfig, make_linker, solve_blockwise
    from celltrack.solve.blockwise.synthetic import synthetic_candidates

    if args.tiny:
        args.frames, args.cells = 6, 150
        args.block, args.context = (3, 1000.0, 40.0, 40.0), (2, 20.0, 20.0, 20.0)
    candidates = synthetic_candidates(args.frames, args.cells, seed=args.seed)
    print(f"candidate graph: {candidates.num_nodes} nodes, {candidates.num_edges} edges")
    # border_distance_um=0: in this synthetic volume cells rarely leave the field of view,
    # so track starts cost the same everywhere
    linker = make_linker(ILPConfig(time_limit_s=30.0, num_workers=1, border_distance_um=0.0))
    config = BlockwiseConfig(
        block_size=(int(args.block[0]), *args.block[1:]),
        context=(int(args.context[0]), *args.context[1:]),
    )

    if args.scheduler:
        client = distributed.Client(args.scheduler)
        cluster = None
    else:
        # threads in one process for --tiny (fast start); worker processes otherwise
        cluster = distributed.LocalCluster(
            n_workers=1 if args.tiny else args.workers,
            threads_per_worker=2 if args.tiny else 1,
            processes=not args.tiny,
            dashboard_address=None,
        )
        client = distributed.Client(cluster)
    try:
        print(f"dask: {client}")
        start = time.perf_counter()
        stitched = solve_blockwise(candidates, linker, config, executor=client,
                                   store=args.store, progress=not args.tiny)
        blockwise_s = time.perf_counter() - start
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    stats = stitched.stats
    print(f"block-wise: {stitched.status.value}, {stitched.graph.num_edges} links, "
          f"objective {stitched.objective:.3f}, {blockwise_s:.1f} s, "
          f"{len(stats.get('blocks', []))} blocks in {stats.get('num_colours', '?')} colours")

    start = time.perf_counter()
    whole = linker.link(candidates)
    whole_s = time.perf_counter() - start
    print(f"whole graph: {whole.status.value}, {whole.graph.num_edges} links, "
          f"objective {whole.objective:.3f}, {whole_s:.1f} s")

    def pairs(g):
        return set(zip(g.edges["source"].tolist(), g.edges["target"].tolist()))

    same = len(pairs(stitched.graph) & pairs(whole.graph))
    gap = (stitched.objective - whole.objective) / max(abs(whole.objective), 1e-9)
    print(f"agreement: {same} of {whole.graph.num_edges} links shared; objective gap "
          f"{100 * gap:.3f} %")
    if "true" in candidates.nodes:
        true_nodes = np.asarray(candidates.nodes["true"], bool)
        chosen = np.isin(candidates.ids, stitched.graph.ids)
        print(f"block-wise kept {int((chosen & true_nodes).sum())} of {int(true_nodes.sum())} "
              f"true detections and {int((chosen & ~true_nodes).sum())} false ones")
    return 0


if __name__ == "__main__":
    sys.exit(main())
