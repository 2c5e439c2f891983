"""Executable theorem statements (one module per theorem); see the README."""
