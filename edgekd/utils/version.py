"""The package version, in one place below every layer (reports and manifests record it)."""

__version__ = "0.1.0"
