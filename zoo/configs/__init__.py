"""Recipes: named training configs. See `zoo.registry` for the name -> recipe map."""

from zoo.configs.base import (LEGACY_VALUES, RunCard, TrainConfig, apply_overrides,
                              parse_value)
