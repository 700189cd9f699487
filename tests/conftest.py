"""Shared fixtures; and a guard so that a run which collected no test fails instead of passing."""

from __future__ import annotations

import pytest


def pytest_sessionfinish(session, exitstatus):
    if session.testscollected == 0:
        session.exitstatus = 1


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    """An isolated runs folder, also seen by any papermill kernel started from the test."""
    folder = tmp_path / "runs"
    monkeypatch.setenv("KERNELFUSION_RUNS", str(folder))
    return folder
