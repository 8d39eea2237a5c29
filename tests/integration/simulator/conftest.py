"""The simulator against the daemon reuses the pipeline's in-process world."""

from __future__ import annotations

from tests.integration.pipeline.conftest import env  # noqa: F401  (the fixture)
