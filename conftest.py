"""Root pytest configuration: ``torch`` in every doctest's namespace (the examples use it)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _torch_in_doctests(doctest_namespace):
    doctest_namespace["torch"] = torch
