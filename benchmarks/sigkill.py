"""SIGKILLs at random moments across trials of thousands of messages: nothing lost or doubled.

Issue 12's test from outside, kept in the repository: 15 kills across 10 trials of 2,000
messages (``tests/kill_trials.py`` runs one trial: ``emailrouter route`` as its own process,
killed once the CRM holds a random number of the trial's messages, then rerun to the end). The
trials take turns with ``after=delete``, ``leave`` and ``move:Processed``. The suite keeps three
small trials (``tests/test_routing_sigkill.py``).

    python benchmarks/sigkill.py [--trials 10] [--messages 2000] [--kills 15] [--seed 1]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from kill_trials import run_trial  # noqa: E402

WORK = ROOT / "benchmarks" / "_work" / "sigkill"
AFTER = ("delete", "leave", "move:Processed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=15, help="SIGKILLs across all trials")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    total_kills, failed = 0, 0
    for n in range(args.trials):
        kills = args.kills // args.trials + (n < args.kills % args.trials)
        after = AFTER[n % len(AFTER)]
        folder = WORK / f"trial{n}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        trial = run_trial(
            folder,
            messages=args.messages,
            kills=kills,
            after=after,
            seed=args.seed * 1000 + n,
            batch_size=args.batch_size,
        )
        total_kills += trial.kills
        failed += not trial.ok
        print(
            f"trial {n}: {trial.messages} messages, after={after}, {trial.kills} kill(s),"
            f" {trial.reruns} rerun(s), {len(trial.lost)} lost, {len(trial.doubled)} doubled,"
            f" mailbox {trial.mailbox_problem or 'ok'}, {trial.seconds:.1f} s",
            flush=True,
        )
        if trial.ok:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"{total_kills} SIGKILLs across {args.trials} trials: {failed} trial(s) lost or doubled")
    return 1 if failed or total_kills < args.kills else 0


if __name__ == "__main__":
    sys.exit(main())
