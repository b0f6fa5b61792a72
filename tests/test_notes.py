"""Every note the inference phase records has a sentence in the report's table, and the
table has none for notes nothing records."""

from __future__ import annotations

import re
from pathlib import Path

from compiler.inference.records import Note
from compiler.results.notes import SENTENCES, sentence

INFERENCE = Path(__file__).resolve().parents[1] / "compiler" / "inference"


def _recorded_kinds() -> set[str]:
    return {kind for path in INFERENCE.glob("*.py")
            for kind in re.findall(r'Note\("(\w+)"', path.read_text(encoding="utf-8"))}


def test_every_recorded_note_has_a_sentence_and_every_sentence_a_note():
    assert _recorded_kinds() == set(SENTENCES)


def test_a_note_is_rendered_from_its_values():
    note = Note("minibatch_svi", {"batch_size": 1000, "sizes": {"N": 20000}})
    assert sentence(note) == "minibatch SVI: each step saw 1,000 random rows of N = 20,000"


def test_a_retry_says_what_failed_and_how_it_was_retried():
    note = Note("retried", {"failure": "the ELBO became nan at step 3", "optimizer": "adam", "rate": 0.005})
    assert sentence(note) == ("the first attempt failed (the ELBO became nan at step 3); this fit is a retry "
                              "from a fresh initialisation with Adam learning rate 0.005")
