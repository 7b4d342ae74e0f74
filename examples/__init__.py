"""Examples of evalkit use (importable as ``examples.<module>`` from the repository root)."""
