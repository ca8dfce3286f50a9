"""Adapting a model to a site's own outlines from a few of its labelled images (`skinseg adapt`)."""

from skinseg.adaptation.adapt import AdaptResult, adapt
from skinseg.adaptation.config import AdaptConfig

__all__ = ["AdaptConfig", "AdaptResult", "adapt"]
