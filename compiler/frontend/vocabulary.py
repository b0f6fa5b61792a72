"""The words and symbols of the language, for highlighters: grammar and tables -> ordered lexical rules.

Both highlighters (the Pygments lexer `compiler/pygments_lexer.py` and the TextMate grammar
that `editors/build_textmate.py` writes) apply `lexical_rules()`, so neither keeps a word
list of its own and both follow the language as it grows:

- keywords and type names are the grammar's quoted words; a word quoted in a rule or
  terminal whose name contains "type" (`type`, `BASE_TYPE`) is a type, any other a keyword;
- operators and punctuation are its quoted symbols (brackets, commas and colons are punctuation);
- names, numbers and comments use the grammar's own regular expressions for them;
- distributions and functions are the rows of the two tables, highlighted where they are
  called (a name followed by `(`): `let sd = 1` is legal, and there `sd` is a plain name.

The first rule that matches at a position wins; `\\S` last catches anything else as an error.
Patterns stay within what Python's `re` and Oniguruma (TextMate's engine) read alike:
character classes, groups, alternation, `\\b` and lookahead.
"""

from __future__ import annotations

import ast
import enum
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from compiler.frontend import distributions, functions
from compiler.frontend.parse import grammar_text


class Kind(enum.Enum):
    WHITESPACE = "whitespace"
    COMMENT = "comment"
    KEYWORD = "keyword"
    TYPE = "type"
    DISTRIBUTION = "distribution"
    FUNCTION = "function"
    NAME = "name"
    NUMBER = "number"
    OPERATOR = "operator"
    PUNCTUATION = "punctuation"
    ERROR = "error"


@dataclass(frozen=True)
class Rule:
    kind: Kind
    pattern: str


@dataclass(frozen=True)
class Vocabulary:
    keywords: tuple[str, ...]
    types: tuple[str, ...]
    operators: tuple[str, ...]
    punctuation: tuple[str, ...]
    distributions: tuple[str, ...]
    functions: tuple[str, ...]
    name: str  # the regular expressions of the grammar's NAME, NUMBER and COMMENT terminals
    number: str
    comment: str


# One pass over the grammar text: comments are skipped, so that quotes or slashes in them
# are not read as literals; a definition starts at the beginning of a line (`?sum:`, `NAME:`).
_GRAMMAR_PART = re.compile(
    r"""(?P<comment>//[^\n]*)
      | (?P<literal>"(?:[^"\\\n]|\\.)*")i?
      | (?P<regex>/(?:[^/\\\n]|\\.)+/)[imslux]*
      | ^[?!]?(?P<definition>\w+)(?:\.-?\d+)?[ \t]*:
      | ^(?P<directive>%\w+)""",
    re.VERBOSE | re.MULTILINE,
)
_WORD = re.compile(r"[A-Za-z_]\w*")
_PUNCTUATION = frozenset("()[]{},:;")
_CALLED = r"(?=\s*\()"  # a name followed by "(": a call


def read_vocabulary(grammar: str, distribution_names: Iterable[str], function_names: Iterable[str]) -> Vocabulary:
    """The vocabulary of a grammar text and the names of the two tables' rows."""
    literals: dict[str, str] = {}  # literal -> the definition it first appears in
    regexes: dict[str, str] = {}  # terminal -> its regular expression
    definition = ""
    for part in _GRAMMAR_PART.finditer(grammar):
        if part["definition"] or part["directive"]:
            definition = part["definition"] or part["directive"]
        elif part["literal"]:
            literals.setdefault(ast.literal_eval(part["literal"]), definition)
        elif part["regex"]:
            regexes.setdefault(definition, part["regex"][1:-1])
    words = [literal for literal in literals if _WORD.fullmatch(literal)]
    symbols = [literal for literal in literals if not _WORD.fullmatch(literal)]
    return Vocabulary(
        keywords=tuple(word for word in words if "type" not in literals[word].lower()),
        types=tuple(word for word in words if "type" in literals[word].lower()),
        operators=tuple(symbol for symbol in symbols if not set(symbol) <= _PUNCTUATION),
        punctuation=tuple(symbol for symbol in symbols if set(symbol) <= _PUNCTUATION),
        distributions=tuple(distribution_names),
        functions=tuple(function_names),
        name=regexes["NAME"],
        number=regexes["NUMBER"],
        comment=regexes["COMMENT"],
    )


@functools.cache
def vocabulary() -> Vocabulary:
    return read_vocabulary(grammar_text(), distributions.TABLE, functions.TABLE)


def lexical_rules(words: Vocabulary | None = None) -> tuple[Rule, ...]:
    """The ordered rules; kinds with no words (a grammar without types) have no rule,
    as an empty alternation would match the empty string."""
    words = vocabulary() if words is None else words
    candidates = (
        (Kind.WHITESPACE, r"\s+"),
        (Kind.COMMENT, words.comment),
        (Kind.KEYWORD, _any_word(words.keywords)),
        (Kind.TYPE, _any_word(words.types)),
        (Kind.DISTRIBUTION, _any_word(words.distributions, followed_by=_CALLED)),
        (Kind.FUNCTION, _any_word(words.functions, followed_by=_CALLED)),
        (Kind.NAME, words.name),
        (Kind.NUMBER, words.number),
        (Kind.OPERATOR, _any_symbol(words.operators)),
        (Kind.PUNCTUATION, _any_symbol(words.punctuation)),
        (Kind.ERROR, r"\S"),
    )
    return tuple(Rule(kind, pattern) for kind, pattern in candidates if pattern)


def _any_word(words: Iterable[str], followed_by: str = "") -> str:
    words = sorted(words)
    return rf"\b(?:{'|'.join(words)})\b{followed_by}" if words else ""


def _any_symbol(symbols: Iterable[str]) -> str:
    # Longest first, so that a two-character operator is never read as two one-character ones.
    symbols = sorted(symbols, key=lambda symbol: (-len(symbol), symbol))
    return "|".join(re.escape(symbol) for symbol in symbols)
