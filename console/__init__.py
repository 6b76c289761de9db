"""cd4ml-console: a keyboard-driven terminal console for ML release management."""

__version__ = "0.1.0"
