"""Security: spec text is never executed as Python. Hostile specs get a clean
error (or compile to code holding only checked names), and nothing they say runs."""

from __future__ import annotations

import ast
import builtins

import pytest

from compiler import PplError, compile_source

HOSTILE = {
    "import call": 'latent x ~ Normal(__import__("os").system("touch PWNED"), 1)',
    "os.system": 'data N: int\nlet y = os.system("touch PWNED")',
    "quotes": "latent x ~ Normal(0, 1)\nlet s = \"'; import os; os.system('touch PWNED') #\"",
    "dunder name": "data __builtins__: int",
    "keyword name": "data lambda: int",
    "builtin name": "data eval: int",
    "exec as function": 'let y = exec("1")',
    "newline inside a call": "latent x ~ Normal(0,\n1)",
    "newline in a name": "latent x\n~ Normal(0, 1)",
    "semicolon statement": "latent x ~ Normal(0, 1); import os",
    "attribute access": "data N: int\nlet y = N.__class__",
    "string literal": 'let y = "text"',
    "lambda": "let y = lambda: 0",
    "deep nesting": "let y = " + "(" * 10_000 + "1" + ")" * 10_000,
    "deep brackets": "data x: real[3]\nlet y = x" + "[0" * 5_000 + "]" * 5_000,
    "ten megabyte line": "let y = " + "1 + " * 2_500_000 + "1",
    "null byte": "latent x ~ Normal(0, 1)\x00",
    "unicode lookalike": "latent х ~ Normal(0, 1)",  # Cyrillic 'х'
    "integer of 4,301 digits": "latent x ~ Normal(" + "9" * 4_301 + ", 1)",
    "real beyond float range": "latent x ~ Normal(1e309, 1)",
    "real that underflows": "latent x ~ Normal(0, 1e-400)",
    "power tower": "latent x ~ Normal(0, 10^10^10)",
    "sixty-six plates": "latent x[" + ", ".join(["2"] * 66) + "] ~ Normal(0, 1)",
    "a million statements": "latent x ~ Normal(0, 1)\n" * 1_000_000,
    "empty array": "latent x[0] ~ Normal(0, 1)",
}


@pytest.fixture
def no_side_effects(tmp_path, monkeypatch):
    """Run in an empty folder, with Python's escape hatches booby-trapped."""
    monkeypatch.chdir(tmp_path)
    calls = []
    for name in ("__import__", "exec", "eval", "open"):
        original = getattr(builtins, name)
        monkeypatch.setattr(builtins, name, _recording(original, name, calls))
    yield calls
    assert not (tmp_path / "PWNED").exists()


def _recording(original, name, calls):
    def wrapper(*args, **kwargs):
        if name == "__import__" and args and args[0] == "os" and kwargs.get("globals") is None:
            calls.append((name, args))
        return original(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("spec", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_spec_is_a_clean_error_with_no_side_effect(spec, no_side_effects):
    with pytest.raises(PplError) as caught:
        compile_source(spec, "hostile.ppl").model  # noqa: B018 - building the model is the point
    assert caught.value.message
    assert not no_side_effects


def test_generated_code_holds_only_names_the_checker_accepted():
    program = compile_source("data N: int\ndata y: real[N]\nlatent mu ~ Normal(0, 1)\nobserve y[i] ~ Normal(mu, 1)")
    names = {node.id for node in ast.walk(ast.parse(program.code.source)) if isinstance(node, ast.Name)}
    assert names <= {"N", "y", "mu", "data", "pyro", "dist", "torch", "constraints", "rt", "N_plate",
                     "mu_loc", "mu_scale", "MAX_PLATE_NESTING"}
    strings = {node.value for node in ast.walk(ast.parse(program.code.source))
               if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert all(s.replace(".", "").replace("_", "").isalnum() or "\n" in s or " " in s for s in strings)


def test_exec_and_eval_appear_only_in_build_on_generated_source():
    """The one place compiler/ runs code is `backend.build`, and what it runs is
    `GeneratedCode.source`: the output of `codegen.generate`, which the tests above
    and tests/test_codegen.py check holds only checked names and numbers."""
    import inspect
    from pathlib import Path

    import compiler
    from compiler.backend import build, codegen

    runners = ("exec", "eval", "compile", "__import__")
    calls = []
    for path in sorted(Path(compiler.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in runners:
                calls.append((path.name, node.func.id))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in runners[:2]:
                calls.append((path.name, node.func.attr))
            if isinstance(node, (ast.Import, ast.ImportFrom)) and "builtins" in (
                    [alias.name for alias in node.names] + [getattr(node, "module", None)]):
                calls.append((path.name, "import builtins"))
    # identifiers.py imports builtins only to read its names (`dir`), which specs may not use.
    assert sorted(calls) == [("build.py", "compile"), ("build.py", "exec"), ("identifiers.py", "import builtins")]
    assert "dir(builtins)" in (Path(compiler.__file__).parent / "frontend" / "identifiers.py").read_text()
    executed = ast.parse(inspect.getsource(build._execute))
    compiled = [n for n in ast.walk(executed) if isinstance(n, ast.Call) and ast.unparse(n.func) == "compile"]
    assert [ast.unparse(n.args[0]) for n in compiled] == ["code.source"]
    assert inspect.signature(build._execute).parameters["code"].annotation in ("GeneratedCode", codegen.GeneratedCode)
