"""Tick data: dataset layout, instruments, the streaming reader, generators, importers, validation."""
