"""Hypothesis strategies more than one test module draws from."""

from hypothesis import strategies as st

finite_float32 = st.floats(
    min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False, width=32
)
"""A float32 value of an update: finite, and small enough that sums of a round stay finite."""
