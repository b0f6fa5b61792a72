"""Editors: the Pygments lexer and the TextMate grammar read every spec, and both follow the
grammar and the tables (`compiler/frontend/vocabulary.py`) without word lists of their own.

The TextMate grammar is checked without node: its patterns stay within what Python's `re`
and Oniguruma read alike, so `re` applies them as a TextMate engine does, line by line."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, Punctuation

from compiler.frontend import distributions, functions
from compiler.frontend.parse import grammar_text
from compiler.frontend.vocabulary import Kind, lexical_rules, read_vocabulary
from compiler.pygments_lexer import PplLexer

ROOT = Path(__file__).resolve().parent.parent
SPEC_FILES = sorted([*(ROOT / "specs").glob("*.ppl"), *(ROOT / "specs" / "posteriordb").glob("*.ppl")])
EDITORS = ROOT / "editors"

_spec = importlib.util.spec_from_file_location("build_textmate", EDITORS / "build_textmate.py")
build_textmate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_textmate)

SAMPLE = """\
# Is this coin fair?
data N: int
data x: int<lower=0, upper=1>[N]
latent f ~ Beta(10, 10)
let sd = sqrt(f * (1 - f))
observe x[i] ~ Bernoulli(f)
"""

# (text in SAMPLE, its Pygments token, its TextMate scope)
CLASSIFIED = [
    ("# Is this coin fair?", Comment.Single, "comment.line.number-sign.ppl"),
    ("latent", Keyword, "keyword.other.ppl"),
    ("observe", Keyword, "keyword.other.ppl"),
    ("int", Keyword.Type, "storage.type.ppl"),
    ("Beta", Name.Class, "support.class.ppl"),
    ("sqrt", Name.Function, "support.function.ppl"),
    ("10", Number, "constant.numeric.ppl"),
    ("~", Operator, "keyword.operator.ppl"),
    ("<", Operator, "keyword.operator.ppl"),
    ("[", Punctuation, "punctuation.other.ppl"),
    ("f", Name, "variable.other.ppl"),
    ("lower", Name, "variable.other.ppl"),
]


def pygments_tokens(text: str) -> list[tuple[object, str]]:
    # The lexer's own tokens, without Pygments' generic newline stripping and adding.
    return list(PplLexer(stripnl=False, ensurenl=False).get_tokens(text))


def textmate_tokens(text: str) -> list[tuple[str | None, str]]:
    """(scope, text) pairs as a TextMate engine scans each line: the pattern whose match
    starts first wins, the earlier pattern on a tie; text between matches has no scope."""
    grammar = json.loads((EDITORS / "textmate" / "ppl.tmLanguage.json").read_text(encoding="utf-8"))
    patterns = [(re.compile(rule["match"]), rule["name"]) for rule in grammar["patterns"]]
    tokens: list[tuple[str | None, str]] = []
    for line in text.splitlines(keepends=True):
        position = 0
        while position < len(line):
            found = [(match.start(), order, match, scope) for order, (pattern, scope) in enumerate(patterns)
                     if (match := pattern.search(line, position))]
            if not found:
                tokens.append((None, line[position:]))
                break
            start, _, match, scope = min(found, key=lambda candidate: candidate[:2])
            assert match.end() > start, f"{scope} matches the empty string in {line!r}"
            if start > position:
                tokens.append((None, line[position:start]))
            tokens.append((scope, match.group()))
            position = match.end()
    return tokens


def first(tokens: list, text: str):
    return next(kind for kind, value in tokens if value == text)


@pytest.mark.parametrize("spec", SPEC_FILES, ids=lambda path: path.name)
def test_the_lexer_reads_every_spec_without_an_error_token(spec):
    errors = [value for token, value in pygments_tokens(spec.read_text(encoding="utf-8")) if token in Error]
    assert errors == []


@pytest.mark.parametrize("spec", SPEC_FILES, ids=lambda path: path.name)
def test_the_lexer_gives_back_every_character_of_every_spec(spec):
    source = spec.read_text(encoding="utf-8")
    assert "".join(value for _, value in pygments_tokens(source)) == source


@pytest.mark.parametrize(("text", "token", "scope"), CLASSIFIED, ids=[text for text, _, _ in CLASSIFIED])
def test_the_lexer_classifies_each_kind_of_token(text, token, scope):
    assert first(pygments_tokens(SAMPLE), text) == token


def test_a_function_name_is_a_function_only_where_it_is_called():
    tokens = pygments_tokens("let sd = 1.0\nlet s = sd(x) + sd\n")
    assert [token for token, value in tokens if value == "sd"] == [Name, Name.Function, Name]


def test_a_character_outside_the_language_is_an_error_token():
    assert first(pygments_tokens("let y = x $ 2\n"), "$") == Error


def test_a_word_the_grammar_gains_is_a_keyword_and_one_in_a_type_rule_a_type():
    grammar = grammar_text() + '\nfactor_stmt: "factor" expr\nordered_type: "ordered" "[" expr "]"\n'
    words = read_vocabulary(grammar, distributions.TABLE, functions.TABLE)
    assert "factor" in words.keywords and "ordered" not in words.keywords
    assert "ordered" in words.types and "factor" not in words.types


def test_a_row_a_table_gains_is_highlighted_where_it_is_called():
    words = read_vocabulary(grammar_text(), [*distributions.TABLE, "Weibull"], [*functions.TABLE, "lgamma"])
    patterns = {rule.kind: re.compile(rule.pattern) for rule in lexical_rules(words)}
    assert patterns[Kind.DISTRIBUTION].match("Weibull(1, 2)")
    assert patterns[Kind.FUNCTION].match("lgamma (x)")


@pytest.mark.parametrize("target", build_textmate.TARGETS, ids=lambda path: str(path.relative_to(EDITORS)))
def test_the_committed_textmate_grammar_is_the_generated_one(target):
    assert target.read_text(encoding="utf-8") == build_textmate.textmate_json(), (
        f"{target.relative_to(ROOT)} is stale: run `python editors/build_textmate.py`")


def test_the_textmate_grammar_uses_only_match_rules():
    grammar = json.loads(build_textmate.textmate_json())
    assert grammar["scopeName"] == "source.ppl"
    assert all(set(rule) == {"name", "match"} for rule in grammar["patterns"])


# Constructs that Python's `re` and Oniguruma read differently, or only one of them reads.
ENGINE_SPECIFIC = ("(?P", "(?<", "(?>", "(?#", r"\A", r"\Z", r"\z", r"\G", r"\h", r"\R", r"\K", r"\p{",
                   "[[:", "*+", "++", "?+", "}+")


def test_the_textmate_patterns_read_alike_in_python_and_oniguruma():
    for rule in json.loads(build_textmate.textmate_json())["patterns"]:
        re.compile(rule["match"])
        assert not [construct for construct in ENGINE_SPECIFIC if construct in rule["match"]], rule


@pytest.mark.parametrize("spec", SPEC_FILES, ids=lambda path: path.name)
def test_the_textmate_grammar_scopes_every_character_of_every_spec(spec):
    tokens = textmate_tokens(spec.read_text(encoding="utf-8"))
    assert [text for scope, text in tokens if scope is None and text.strip()] == []
    assert [text for scope, text in tokens if scope == "invalid.illegal.ppl"] == []


@pytest.mark.parametrize(("text", "token", "scope"), CLASSIFIED, ids=[text for text, _, _ in CLASSIFIED])
def test_the_textmate_grammar_classifies_each_kind_of_token(text, token, scope):
    assert first(textmate_tokens(SAMPLE), text) == scope


def test_the_textmate_grammar_marks_a_character_outside_the_language_invalid():
    assert first(textmate_tokens("let y = x $ 2\n"), "$") == "invalid.illegal.ppl"


def test_the_vscode_extension_declares_the_language_and_carries_the_grammar():
    extension = EDITORS / "vscode"
    contributes = json.loads((extension / "package.json").read_text(encoding="utf-8"))["contributes"]
    (language,) = contributes["languages"]
    (grammar,) = contributes["grammars"]
    assert (language["id"], language["extensions"], grammar["language"]) == ("ppl", [".ppl"], "ppl")
    assert grammar["scopeName"] == json.loads(build_textmate.textmate_json())["scopeName"]
    assert (extension / grammar["path"]).resolve() in build_textmate.TARGETS
    configuration = json.loads((extension / language["configuration"]).read_text(encoding="utf-8"))
    assert configuration["comments"]["lineComment"] == "#"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is in Python 3.11 and later")
def test_pyproject_registers_the_lexer_as_a_pygments_entry_point():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    module, _, name = project["entry-points"]["pygments.lexers"]["ppl"].partition(":")
    assert getattr(importlib.import_module(module), name) is PplLexer
    assert "pygments" in " ".join(project["optional-dependencies"]["highlight"])


def test_pygments_finds_the_lexer_by_name_and_file_name_once_installed():
    if not any(entry.name == "ppl" for entry in importlib.metadata.entry_points(group="pygments.lexers")):
        pytest.skip("the installed pplc predates its pygments entry point: `pip install -e .` registers it")
    assert type(get_lexer_by_name("ppl")).__name__ == "PplLexer"
    assert type(get_lexer_for_filename("specs/coin.ppl")).__name__ == "PplLexer"
