"""Domain randomization: declarative terms, presets, the randomizer, ADR and sensor models."""

from twin.randomization.adr import ADR, ADRSettings
from twin.randomization.presets import load_randomization, preset_names
from twin.randomization.randomizer import Randomizer
from twin.randomization.terms import (Choice, Gaussian, LogUniform, RandomizationConfig,
                                      RandomizationError, Term, Uniform)

__all__ = ["ADR", "ADRSettings", "Choice", "Gaussian", "LogUniform", "RandomizationConfig",
           "RandomizationError", "Randomizer", "Term", "Uniform", "load_randomization",
           "preset_names"]
