"""Operations tests reuse the pipeline's in-process world (real PostgreSQL, simulator)."""

from __future__ import annotations

from tests.integration.pipeline.conftest import env  # noqa: F401  (the fixture)
