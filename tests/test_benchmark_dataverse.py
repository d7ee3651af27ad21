"""benchmarks/dataverse.py, small: it runs, and what it measures holds at any size.

The figures themselves (1,000 messages, 1,000 emails) are for the benchmark run; here a few
messages show that every section still works against the strict fake, that the outgoing run sends
everything through the Dataverse backend, and that the metadata read is paid once per connection
(a warm state file saves it), not per batch.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _benchmark():
    spec = importlib.util.spec_from_file_location(
        "bench_dataverse", ROOT / "benchmarks" / "dataverse.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_dataverse_benchmark_runs_small(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    bench = _benchmark()
    argv = ["--repeat", "1", "--messages", "20", "--emails", "10", "--batch-size", "5",
            "--storm-messages", "3", "--retry-after", "0.05"]  # fmt: skip
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert "outcomes: {'created': 20}" in out
    assert "HTTP requests per 1,000 routed messages:" in out
    assert "outgoing: 10 Pending Send emails -> Sent" in out
    assert "HTTP requests per 1,000 sent emails:" in out
    cold = int(re.search(r"once per connection: (\d+) requests", out).group(1))
    each = int(re.search(r"per batch: (\d+) \(writes 1,", out).group(1))
    warm = int(re.search(r"same org and state file: (\d+) requests", out).group(1))
    assert each >= 1 and warm < cold, out  # the metadata $batch: once, and cached for the next run
    assert "EntityDefinitions(LogicalName='email')" in out
    assert "nothing lost or doubled" in out and "3 emails stored (expected 3" in out
