"""Domain randomization: declarative terms, presets, the randomizer, ADR and sensor models."""

from celltwin.randomization.adr import ADR, ADRSettings
from celltwin.randomization.presets import load_randomization, preset_names
from celltwin.randomization.randomizer import Randomizer
from celltwin.randomization.terms import (Choice, Gaussian, LogUniform, RandomizationConfig,
                                          RandomizationError, Term, Uniform)

__all__ = ["ADR", "ADRSettings", "Choice", "Gaussian", "LogUniform", "RandomizationConfig",
           "RandomizationError", "Randomizer", "Term", "Uniform", "load_randomization",
           "preset_names"]
