"""Arrays as pplc stores them: the bottom layer that data loading and the generated
code's runtime share (so that neither imports the other).

numpy loads with this module; torch only when an array becomes a tensor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Rows per chunk wherever an array is read a part at a time (checks, digests,
# sufficient statistics): a memory-mapped one is never read whole.
CHUNK_ROWS = 1 << 20


def tensor(value: Any, index: bool = False):
    """An array as a tensor: positions (`index`) as integers, everything else in the default float."""
    import torch

    # A copy: arrays mapped from files are read-only, and torch will not share those.
    array = np.array(value, dtype=np.int64 if index else np.float64)
    return torch.as_tensor(array, dtype=torch.long if index else torch.get_default_dtype(),
                           device=torch.get_default_device())
