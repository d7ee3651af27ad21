"""Peak memory of routing one large message, per MB of message, against a small one.

Each measurement is its own process (``routing.run`` on a Maildir holding one message, into a
fresh SQLite CRM), so its peak RSS (``VmHWM``; Linux) is that message's alone. The baseline is a
message of a few KB routed the same way in the same run; the figure that matters is

    (peak RSS of the large message - baseline) / message size

how many bytes of memory one byte of message costs. Shapes: ``attachment`` (a text body and one
base64 attachment, the usual large mail), ``text`` (one quoted-printable text body) and
``batch`` (several large messages in one mailbox, split by ``batch_bytes``).

    python benchmarks/memory.py [--mb 50] [--shapes attachment,text,batch] [--batch-bytes N]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024

_CHILD = r"""
import json, sys
from emailrouter_lib import routing
from emailrouter_lib.crm import init_crm
from emailrouter_lib.mailboxes.url import local_mailbox_url
crm, maildir, batch_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3])
init_crm(crm, demo=True, force=True)
url = local_mailbox_url(maildir, "maildir", owner="queue:support@contoso.example")
result = routing.run({"mailboxes": [url], "crm": crm, "progress": False,
                      "batch_bytes": batch_bytes})
# VmHWM, not ru_maxrss: Linux carries the parent's peak over into a child's ru_maxrss
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"counts": result.counts, "peak_kb": int(status["VmHWM"].split()[0])}))
"""


def large_message(size: int, shape: str, n: int = 0) -> bytes:
    """A message of about *size* bytes: one base64 attachment, or one quoted-printable body."""
    head = (
        "From: carol@fabrikam.example\r\nTo: support@contoso.example\r\n"
        f"Subject: large message {n}\r\nDate: Mon, 04 Mar 2024 12:00:00 +0000\r\n"
        f"Message-ID: <large-{shape}-{n}-{size}@bench.example>\r\nMIME-Version: 1.0\r\n"
    )
    if shape == "text":
        line = "A line of quoted-printable text with an accent: caf=C3=A9, and more words.=\r\n"
        body = line * (size // len(line))
        return (
            head + "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n" + body
        ).encode()
    payload = os.urandom(size * 3 // 4)
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    return (
        head.encode()
        + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        + b"Content-Type: text/plain\r\n\r\nThe report is attached.\r\n--b\r\n"
        + b'Content-Type: application/octet-stream; name="report.bin"\r\n'
        + b'Content-Disposition: attachment; filename="report.bin"\r\n'
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + encoded
        + b"--b--\r\n"
    )


def small_message() -> bytes:
    return (
        b"From: carol@fabrikam.example\r\nTo: support@contoso.example\r\nSubject: small\r\n"
        b"Date: Mon, 04 Mar 2024 12:00:00 +0000\r\nMessage-ID: <small@bench.example>\r\n\r\n"
        b"Hello from a customer.\r\n"
    )


def measure(work: Path, name: str, messages: list[bytes], batch_bytes: int) -> dict:
    """Route *messages* from a fresh Maildir in a fresh process; its peak RSS in bytes."""
    folder = work / name
    for sub in ("new", "cur", "tmp"):
        (folder / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
    for n, raw in enumerate(messages):
        (folder / "Maildir" / "new" / f"17000000{n:02d}.M{n}P1.bench").write_bytes(raw)
    crm = f"sqlite:///{folder / 'crm.sqlite'}"
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, crm, str(folder / "Maildir"), str(batch_bytes)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return {"counts": found["counts"], "peak": found["peak_kb"] * 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=50, help="size of the large message (MB)")
    parser.add_argument("--shapes", default="attachment,text,batch")
    parser.add_argument("--batch-bytes", type=int, default=64 * MB)
    parser.add_argument("--batch-count", type=int, default=6, help="messages in the batch shape")
    args = parser.parse_args(argv)
    size = args.mb * MB
    with tempfile.TemporaryDirectory(prefix="emailrouter-memory-") as tmp:
        work = Path(tmp)
        base = measure(work, "baseline", [small_message()], args.batch_bytes)
        print(f"baseline (one small message): peak RSS {base['peak'] / MB:.0f} MB")
        for shape in args.shapes.split(","):
            count = args.batch_count if shape == "batch" else 1
            kind = "attachment" if shape == "batch" else shape
            messages = [large_message(size, kind, n) for n in range(count)]
            total, largest = sum(map(len, messages)), max(map(len, messages))
            found = measure(work, shape, messages, args.batch_bytes)
            extra = found["peak"] - base["peak"]
            print(
                f"{shape}: {count} message(s), {total / MB:.0f} MB in all, "
                f"peak RSS {found['peak'] / MB:.0f} MB, {extra / MB:.0f} MB over the baseline = "
                f"{extra / largest:.1f}x the largest message; {found['counts']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
