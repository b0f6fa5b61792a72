"""Property: whatever text a user types, pplc either compiles it (to code that
Python accepts) or raises a clean `PplError` — never any other exception.

Two generators: mutations of the target programs, and random token sequences.
The default suite runs 2,500 cases of each (5,000 in all); `-m slow` runs ten
times as many.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import PplError, compile_source
from compiler.distributions import TABLE as DISTRIBUTIONS
from compiler.functions import TABLE as FUNCTIONS

PROGRAMS = [p.read_text() for p in sorted((Path(__file__).parent.parent / "specs").glob("*.ppl"))]
PUNCTUATION = list("()[]<>=~,+-*/^@:#.;\"'\n\t ") + ["\x00", "é", "__"]
TOKENS = (["data", "latent", "param", "let", "observe", "int", "real", "lower", "upper", "~", "=", ":",
           "(", ")", "[", "]", "<", ">", ",", "+", "-", "*", "/", "^", "@", "\n", "0", "1", "2.5", "1e3",
           "N", "K", "x", "y", "i", "j", "mu", "__import__", "os", "lambda", "import"]
          + list(DISTRIBUTIONS) + list(FUNCTIONS))

def cases(count: int) -> settings:
    return settings(max_examples=count, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                    database=None)


def compiles_or_fails_cleanly(text: str) -> None:
    try:
        program = compile_source(text, "fuzz.ppl")
    except PplError as error:
        assert error.message
        return
    compile(program.code.source, "generated", "exec")


@st.composite
def mutated_programs(draw):
    text = draw(st.sampled_from(PROGRAMS))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        match draw(st.sampled_from(["delete", "insert", "replace", "move lines"])):
            case "delete":
                end = position + draw(st.integers(1, 8))
                text = text[:position] + text[end:]
            case "insert":
                text = text[:position] + draw(st.sampled_from(PUNCTUATION + TOKENS)) + text[position:]
            case "replace":
                text = text[:position] + draw(st.sampled_from(TOKENS)) + text[position + 1:]
            case "move lines":
                lines = text.split("\n")
                a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
                if draw(st.booleans()):
                    lines.insert(a, lines[b])
                else:
                    lines[a], lines[b] = lines[b], lines[a]
                text = "\n".join(lines)
    return text


token_sequences = st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join)


@cases(2500)
@given(mutated_programs())
def test_mutated_programs_compile_or_fail_cleanly(text):
    compiles_or_fails_cleanly(text)


@cases(2500)
@given(token_sequences)
def test_random_token_sequences_compile_or_fail_cleanly(text):
    compiles_or_fails_cleanly(text)


@pytest.mark.slow
@cases(25_000)
@given(st.one_of(mutated_programs(), token_sequences))
def test_many_more_cases_compile_or_fail_cleanly(text):
    compiles_or_fails_cleanly(text)
