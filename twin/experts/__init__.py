"""Scripted experts: hand-written policies for demos, line planning and demonstrations."""

from celltwin.experts.pick_place import PickPlaceExpert, Phase

__all__ = ["PickPlaceExpert", "Phase"]
