"""Validated settings and the YAML configs that ship with quorum."""

from config.runtime import RuntimeConfig
from config.settings import (
    ModelSpec,
    PipelineConfig,
    StageConfig,
    VotingConfig,
    load_config,
)

__all__ = [
    "ModelSpec",
    "PipelineConfig",
    "RuntimeConfig",
    "StageConfig",
    "VotingConfig",
    "load_config",
]
