"""Argument checks and their messages, in one place.

Every public loss validates its arguments through these helpers so that a bad call fails the same
way everywhere: a ``ValueError`` (bad value) or ``TypeError`` (bad type) whose message names the
argument, what was expected and what was received.

Settings (``smooth``, ``alpha``, ``class_weights``, ...) are checked **once**, when a loss is built
(:mod:`stableloss._options`), never per forward. They accept what segmentation-models-pytorch
users pass: Python numbers, NumPy scalars and arrays, 0-d and 1-d tensors, lists and tuples; a
tensor is checked exactly like a list. Checks that look at tensor *values* (target ranges) cost a
host synchronisation; they run only when ``validate_args=True`` and are skipped while
``torch.compile`` traces the loss and for meta tensors.

The checks live in five files: :mod:`.values` (settings), :mod:`.tensors` (a loss's input and
target), :mod:`.pixelwise` (the same-shape and class-dim pairs of soft BCE, soft cross-entropy and
MCC), :mod:`.spatial` (distance maps and surface metrics) and :mod:`.maps` (a caller's distance map
against the loss's map settings); the names of all but the last are re-exported here, so callers write
``_checks.check_number(...)``.
"""

from stableloss._checks.pixelwise import check_class_dim_pair, check_same_shape_pair
from stableloss._checks.spatial import (
    BACKENDS,
    SPACING_LIMIT,
    check_binary,
    check_labels,
    check_num_classes,
    check_same_shape,
    check_spacing,
    check_spacing_option,
    check_spatial_tensor,
    check_tolerance,
)
from stableloss._checks.tensors import (
    WIDE_UNSIGNED,
    check_class_count,
    check_class_indices,
    check_input,
    check_pair,
    check_target,
    check_target_values,
    tensor_from_array,
    widen_unsigned,
)
from stableloss._checks.values import (
    MODES,
    as_number_tuple,
    check_alpha,
    check_bool,
    check_choice,
    check_choices,
    check_classes,
    check_ignore_index,
    check_int,
    check_mode,
    check_number,
    check_optional_bool,
    check_optional_number,
    check_weights,
    is_compiling,
    is_traced,
)

__all__ = [
    "BACKENDS", "MODES", "SPACING_LIMIT", "WIDE_UNSIGNED", "as_number_tuple", "check_alpha", "check_binary",
    "check_bool", "check_choice", "check_choices", "check_class_count", "check_class_dim_pair", "check_class_indices",
    "check_classes", "check_ignore_index", "check_input", "check_int", "check_labels", "check_mode",
    "check_num_classes", "check_number", "check_optional_bool", "check_optional_number", "check_pair",
    "check_same_shape", "check_same_shape_pair", "check_spacing", "check_spacing_option", "check_spatial_tensor",
    "check_target", "check_target_values", "check_tolerance", "check_weights", "is_compiling", "is_traced", "tensor_from_array",
    "widen_unsigned",
]
