"""Cascade: an event-driven, numba-compiled backtester for leveraged crypto trading."""
__version__ = "0.1.0"
