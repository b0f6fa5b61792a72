"""Phase 2, check: the names a spec may declare: not a word of the language, nor a
name of Python or of the generated module.
"""

from __future__ import annotations

import builtins
import keyword

from compiler.errors import PplError
from compiler.frontend import syntax

# Names the generated module itself uses; a spec name must not shadow them.
GENERATED_NAMES = frozenset({
    "torch", "pyro", "dist", "constraints", "rt", "Vindex", "data", "model", "guide", "transform_data",
    "MAX_PLATE_NESTING",
})
RESERVED = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | GENERATED_NAMES
# The words of the language itself (grammar/ppl.lark); the parser would take them as names.
KEYWORDS = frozenset({"data", "latent", "param", "let", "observe", "factor", "ode", "fun", "int", "real"})


def check_identifier(name: syntax.Name) -> None:
    """A declared name or an index variable becomes a Python identifier in the
    generated code, so it must not be a keyword of either language or shadow a name that code uses."""
    if name.id in KEYWORDS:
        raise PplError(f"'{name.id}' is a keyword of the language", name.span, "choose another name")
    if name.id in RESERVED or name.id.startswith("__"):
        raise PplError(f"'{name.id}' is a reserved name", name.span, "rename it; Python names cannot be used")

