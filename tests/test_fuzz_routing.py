"""Mutated corpus messages through the real route: never lost, never twice, never a crash.

Hypothesis draws batches of fuzz cases (a corpus message, up to three hostile mutations, a seed:
``fuzz_mutations.py``), drops them with exact copies, a twin and an ordinary message into a fresh
Maildir and routes them into a fresh demo SQLite CRM twice (``fuzz_property.py``). The property:
every item ends in exactly one known outcome, the run and its artifacts survive, nothing is lost
(created, a true duplicate, left in the mailbox, or a byte-exact quarantine copy), the ordinary
message is created, and the second run creates nothing. The explicit examples are the failures
of issue 12. ``benchmarks/fuzz.py`` (``make fuzz``) runs the same property for 50,000 cases.
"""

from __future__ import annotations

import shutil

import pytest
from fuzz_mutations import MUTATION_NAMES, Case, corpus
from fuzz_property import Batch, check_batch, scratch_dir
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

SOURCES = {m.name: m.raw for m in corpus()}
NAMES = sorted(SOURCES)
SUPPORT = "queue:support@contoso.example"
SIMPLE = "vendored/sisimai-set-of-emails/maildir/not/is-not-bounce-01.eml"
BOUNCE = "vendored/sisimai-set-of-emails/maildir/bsd/lhost-postfix-01.eml"
SEEDS = st.integers(0, 2**32 - 1)

cases = st.builds(
    Case,
    st.sampled_from(NAMES),
    st.lists(st.sampled_from(MUTATION_NAMES), min_size=1, max_size=3).map(tuple),
    SEEDS,
)


@st.composite
def batches(draw) -> Batch:
    drawn = draw(st.lists(cases, min_size=1, max_size=4))
    if draw(st.booleans()):  # a twin: the same message and mutations, another seed
        drawn.append(Case(drawn[0].source, drawn[0].mutations, draw(SEEDS)))
    return Batch(
        tuple(drawn),
        copies=tuple(draw(st.lists(st.integers(0, len(drawn) - 1), max_size=2, unique=True))),
        ordinary_at=draw(st.integers(0, len(drawn))),
        after=draw(st.sampled_from(("delete", "leave", "move:Processed"))),
        owner=draw(st.sampled_from((SUPPORT, None))),
        batch_size=draw(st.sampled_from((1, 2, 200))),
    )


@pytest.fixture
def scratch():
    """A folder on tmpfs when there is one (the batches' SQLite commits are the cost)."""
    folder = scratch_dir("fuzz-test-")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def alone(*mutations: str, source: str = SIMPLE, twin: bool = False, seed: int = 1) -> Batch:
    """One case of issue 12 beside the ordinary message (and its twin), all in one CRM batch."""
    case = Case(source, mutations, seed)
    twins = (case, Case(source, mutations, seed + 1)) if twin else (case,)
    return Batch(twins, ordinary_at=len(twins), batch_size=200)


@pytest.mark.slow
@pytest.mark.timeout(120)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=batches())
# 1. text that cannot be stored: a lone surrogate in each place a message carries text
@example(batch=alone("unencodable-subject"))
@example(batch=alone("unencodable-from-name"))
@example(batch=alone("unencodable-to-name"))
@example(batch=alone("unencodable-body"))
@example(batch=alone("unencodable-attachment-name"))
@example(batch=alone("unencodable-subject", source=BOUNCE))
# 2. raw 8-bit bytes in encoded words, also in a bounce's Subject and From
@example(batch=alone("raw8bit-to-name"))
@example(batch=alone("raw8bit-subject", "tracked-reply"))
@example(batch=alone("raw8bit-subject", source=BOUNCE))
@example(batch=alone("raw8bit-from-name", "as-ndr"))
# 3. charset labels of bytes-to-bytes codecs
@example(batch=alone("bytes-charset-subject"))
@example(batch=alone("bytes-charset-from-name", source=BOUNCE))
# 4. a first line that is not a header: twins must not become one message
@example(batch=alone("leading-blank-line", twin=True))
@example(batch=alone("received-without-colon", twin=True))
@example(batch=alone("nul-in-first-line"))
@example(batch=alone("mbox-from-bare-cr"))
# 6. long header values without "@" (20 KB, bare: seed 2071 draws that shape)
@example(batch=alone("long-return-path", seed=2071))
@example(batch=alone("long-message-id", seed=2071))
@example(batch=alone("long-in-reply-to", seed=2071))
@example(batch=alone("long-references", seed=2071))
def test_mutated_corpus_messages_are_each_routed_once_and_never_lost(scratch, batch):
    report = check_batch(batch, SOURCES, scratch / "batch")
    assert report.ok, report.explain()
