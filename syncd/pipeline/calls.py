"""Timing and recording DingTalk calls made for an approval (:func:`syncd.recording.call`,
which the adapters that record their own calls use too)."""

from __future__ import annotations

from syncd.recording import call

__all__ = ["call"]
