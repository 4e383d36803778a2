"""The Kubernetes API server stand-in behind e2e/apiserver/run (see README.md here)."""
from .cli import main  # noqa: F401
