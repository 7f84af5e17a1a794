"""Post-processing of predicted masks: keep the largest 3-D connected component, as LiTS and nnU-Net pipelines do.

A model trained on little data predicts liver where other organs look like liver (spleen, heart,
stomach wall), often far from it; those islands dominate HD95. The liver is one connected organ,
so keeping the largest connected component of the prediction removes them (and, if the model
split the liver, its smaller parts too).

Connectivity is **face** connectivity (6-connected in 3-D: voxels sharing a face;
``scipy.ndimage.generate_binary_structure(3, 1)``, :func:`scipy.ndimage.label`'s default), the
stricter choice: two blobs touching only at an edge or a corner count as two components.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest face-connected component of a boolean mask (any number of dimensions).

    Of two components of equal size the one met first in C order is kept. An empty mask is
    returned empty.

    Args:
        mask: Boolean (or 0/1) array.

    Returns:
        A boolean array of ``mask``'s shape holding only the largest component.

    Raises:
        TypeError: ``mask`` is not a NumPy array.

    Example:
        >>> m = np.zeros((1, 1, 8), bool); m[..., :3] = True; m[..., 6] = True
        >>> largest_component(m).astype(int).ravel().tolist()
        [1, 1, 1, 0, 0, 0, 0, 0]
    """
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"mask must be a numpy.ndarray; received {type(mask).__name__}")
    mask = mask.astype(bool, copy=False)
    components, count = ndimage.label(mask)  # default structure: face connectivity
    if count <= 1:
        return mask.copy()
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    sizes[0] = 0  # the background
    return components == int(np.argmax(sizes))


def keep_largest_component(labels: np.ndarray) -> np.ndarray:
    """Label volume with only the largest connected component of its foreground.

    The foreground is every nonzero label together (the liver with its tumours, for the LiTS
    labels), so a tumour inside the kept liver stays and one outside it goes; for a binary mask it
    is the mask itself. Voxels removed become 0; kept voxels keep their labels.

    Args:
        labels: Integer label array, e.g. ``(Z, H, W)`` uint8 from :func:`liver.infer.to_labels`.

    Returns:
        An array of ``labels``' shape and dtype.

    Raises:
        TypeError: ``labels`` is not a NumPy array of integers or booleans.

    Example:
        >>> v = np.array([[[1, 2, 0, 0, 1]]], np.uint8)
        >>> keep_largest_component(v).ravel().tolist()
        [1, 2, 0, 0, 0]
    """
    if not isinstance(labels, np.ndarray) or not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        got = labels.dtype if isinstance(labels, np.ndarray) else type(labels).__name__
        raise TypeError(f"labels must be a numpy.ndarray of integers or booleans; received {got}")
    return np.where(largest_component(labels != 0), labels, np.zeros((), labels.dtype))
