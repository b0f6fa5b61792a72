"""Phase 5: what results read from a compiled spec, as a type.

`api.Program` is the compiled spec, but `api` sits above `results`, so results
name what they use of it here (a structural type: `Program` is one without
saying so). The engine takes the same object today; where it moves to
`backend.build.CompiledModel`, `engine` passes `program.compiled`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from compiler.backend.build import CompiledModel
    from compiler.backend.codegen import GeneratedCode
    from compiler.errors import Source
    from compiler.frontend import ir


class CompiledProgram(Protocol):
    """A checked spec, its generated code and its generated functions (`api.Program`)."""

    source: Source
    ir: ir.Model
    guide_family: str  # normal | native
    code: GeneratedCode

    @property
    def compiled(self) -> CompiledModel: ...

    @property
    def model(self) -> Callable: ...

    @property
    def guide(self) -> Callable: ...
