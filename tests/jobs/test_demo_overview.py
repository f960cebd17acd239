"""The demo's overview draws the phantom's truth (dashed) under the contours."""

from __future__ import annotations

from pathlib import Path

import pytest

from autocontour.inference import overview
from autocontour.jobs import DemoRequest, run_demo
from autocontour.jobs import demo as demo_module


def test_demo_overview_has_the_truth_as_reference(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict] = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return overview.write_overview(*args, **kwargs)
    monkeypatch.setattr(demo_module, "write_overview", spy)
    result = run_demo(DemoRequest(tmp_path / "demo", seed=90004, shape=(24, 64, 64)))
    assert len(calls) == 1 and calls[0]["reference"] is not None
    assert calls[0]["model"] == result.model and calls[0]["overwrite"]
    png = tmp_path / "demo" / result.report["outputs"]["overview"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
