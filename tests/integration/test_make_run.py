"""`make run`'s demo: the example pipeline forwards every SDK item and the summary says so."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_forwards_everything_it_receives_and_reports_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.demo", "examples/local.yaml", "--seconds", "1", "--any-free-port"],
        cwd=ROOT, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[console] traces:" in out, "the debug exporter printed batches"
    sent_spans = int(re.search(r"sent by the SDK: (\d+) spans", out).group(1))  # type: ignore[union-attr]
    rows = {
        m.group(1): [int(v) for v in m.group(2).split()]
        for m in re.finditer(r"^  (traces|metrics|logs)\s+([\d ]+)$", out, re.M)
    }
    assert rows["traces"] == [sent_spans, sent_spans, sent_spans], "received = exported by both exporters"
    assert rows["logs"][0] == rows["logs"][1] == rows["logs"][2] > 0
    assert f"stand-in backend received: {sent_spans} traces" in out
    assert "dropped inside the agent: 0" in out
    ratio = float(re.search(r"\(zstd, ([\d.]+)x smaller\)", out).group(1))  # type: ignore[union-attr]
    assert ratio > 1.5
