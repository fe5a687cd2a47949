"""Make the flow test helpers (flow_data) importable; keep torch to one thread."""

import sys
from pathlib import Path

import torch

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

torch.set_num_threads(1)
