"""Scripted experts: hand-written policies for demos, line planning and demonstrations."""

from policies.scripted.pick_place import PickPlaceExpert, Phase

__all__ = ["PickPlaceExpert", "Phase"]
