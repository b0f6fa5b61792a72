"""Editors: the Pygments lexer for .ppl files (Sphinx, nbconvert, `pygmentize -l ppl`, rich ...).

Registered as the `pygments.lexers` entry point `ppl` in pyproject.toml, so any tool that
asks Pygments for `ppl`, `pplc` or a `*.ppl` file finds it once pplc is installed with the
`highlight` extra. The rules are `vocabulary.lexical_rules()`, which the TextMate grammar
shares; this module only names a Pygments token for each kind. It is the one module that
imports pygments.
"""

from __future__ import annotations

from pygments.lexer import RegexLexer
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, Punctuation, Whitespace

from compiler.frontend.vocabulary import Kind, lexical_rules

TOKENS = {
    Kind.WHITESPACE: Whitespace,
    Kind.COMMENT: Comment.Single,
    Kind.KEYWORD: Keyword,
    Kind.TYPE: Keyword.Type,
    Kind.DISTRIBUTION: Name.Class,
    Kind.FUNCTION: Name.Function,
    Kind.NAME: Name,
    Kind.NUMBER: Number,
    Kind.OPERATOR: Operator,
    Kind.PUNCTUATION: Punctuation,
    Kind.ERROR: Error,
}


class PplLexer(RegexLexer):
    """The pplc modelling language: `data`, `latent`, `param`, `let` and `observe` statements."""

    name = "pplc"
    aliases = ["ppl", "pplc"]
    filenames = ["*.ppl"]
    mimetypes = ["text/x-ppl"]

    tokens = {"root": [(rule.pattern, TOKENS[rule.kind]) for rule in lexical_rules()]}
