"""pipeline.lease_seconds must outlast a create (found by the fault suite)."""

from __future__ import annotations

import pytest

from syncd.errors import ConfigError
from syncd.settings import load_settings


def test_a_lease_too_short_for_a_create_is_refused(tmp_path):
    path = tmp_path / "syncd.toml"
    path.write_text("[dingtalk]\ntimeout = 10\n[pipeline]\nlease_seconds = 20\n")
    with pytest.raises(ConfigError, match=r"lease_seconds \(20\) must be at least .* = 25"):
        load_settings(path)


def test_the_defaults_and_a_short_timeout_with_a_short_lease_are_fine(tmp_path):
    path = tmp_path / "syncd.toml"
    path.write_text("[dingtalk]\ntimeout = 3\n[pipeline]\nlease_seconds = 11\n")
    assert load_settings(path).pipeline.lease_seconds == 11
    assert load_settings(None).pipeline.lease_seconds == 120
