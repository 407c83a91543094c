"""Validated settings and the YAML configs that ship with quorum."""

from config.settings import (
    ModelSpec,
    PipelineConfig,
    StageConfig,
    VotingConfig,
    load_config,
)

__all__ = ["ModelSpec", "PipelineConfig", "StageConfig", "VotingConfig", "load_config"]
