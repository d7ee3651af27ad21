"""Exactly-once under SIGKILLs at random moments: what held in issue 12 must keep holding.

The issue killed ``emailrouter route`` 15 times across 10 trials of 2,000 messages and found
nothing lost or doubled; ``benchmarks/sigkill.py`` repeats that at full size. Here, three
smaller trials (one per ``after=``) keep it in the suite: each run is killed by the kernel at a
random point of its progress, then rerun to the end, and every message must be in the CRM once
with the mailbox handled.
"""

from __future__ import annotations

import pytest
from kill_trials import run_trial


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("after", "kills", "seed"), [("delete", 2, 1), ("leave", 1, 2), ("move:Processed", 2, 3)]
)
def test_random_sigkills_lose_and_double_nothing(tmp_path, after, kills, seed):
    trial = run_trial(tmp_path, messages=300, kills=kills, after=after, seed=seed)
    assert trial.kills == kills, trial  # the kills really happened mid-run
    assert trial.lost == [] and trial.doubled == {}, trial
    assert trial.mailbox_problem is None, trial
