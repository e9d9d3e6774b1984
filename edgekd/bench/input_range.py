"""Does the benchmark data look like what the file was trained on?

A user's ``.npz`` is fed as it is. Raw 0-255 pixels, or pixels scaled to [0, 1] but not normalized,
run without error and give near-chance accuracy: the manifest records the normalization the file
expects, so the figure can carry a warning that says so instead of a silent wrong number. Only images
have such a range; standardized tabular features are never called raw pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgekd.formats import manifest_path

SLACK = 0.1  # of the expected span: augmentation and rounding never push inputs this far out


def expected_range(normalization: dict) -> tuple[float, float]:
    """The smallest and largest input a normalized pixel can become, over all channels."""
    scale = float(normalization.get("pixel_scale", 1 / 255))
    mean = np.asarray(normalization["mean"], dtype=np.float64)
    std = np.asarray(normalization["std"], dtype=np.float64)
    low, high = (0 - mean) / std, (255 * scale - mean) / std
    return float(low.min()), float(high.max())


def range_warning(normalization: dict | None, data: np.ndarray) -> str | None:
    """A one-line warning when ``data`` cannot be inputs normalized as ``normalization`` says."""
    if not normalization or data.dtype.kind not in "fiu" or data.size == 0:
        return None  # integer data counts too: uint8 pixels fed to a float file are cast, not scaled
    if normalization.get("kind", "image") != "image":
        return None  # standardized features have no fixed range to check against
    low, high = expected_range(normalization)
    seen_low, seen_high = float(data.min()), float(data.max())
    slack = SLACK * (high - low)
    seen = f"the data's inputs lie in [{seen_low:.3g}, {seen_high:.3g}]"
    wanted = f"normalized inputs lie in [{low:.3g}, {high:.3g}]"
    how = f"feed {normalization.get('formula', 'normalized pixels')} (manifest 'normalization')"
    if seen_low < low - slack or seen_high > high + slack:
        return f"{seen} but {wanted}: raw pixels? {how}; the accuracy is likely wrong"
    if low < -slack and seen_low >= -0.01 and seen_high <= 1.01 and high > 1 + slack:
        return f"{seen} but {wanted}: scaled to [0, 1] and not normalized? {how}; the accuracy is likely wrong"
    return None


def artifact_normalization(artifact: Path) -> dict | None:
    """The normalization recorded in the file's manifest, if it has one."""
    try:
        return json.loads(manifest_path(artifact).read_text()).get("normalization")
    except (OSError, ValueError, AttributeError):
        return None
