"""The fuzzer behind tests/test_fuzz.py: spec sources, synthetic data, and the run that
must end in success or a `PplError`.

Three sources of specs, each a function of a seed (so every case can be replayed):
`mutated_spec` edits the example specs token by token, `generated_spec` writes
statements from the grammar with declared names in scope (most pass the checker),
`random_text` is random tokens, characters and bytes. `run_case` compiles a spec
and, where it passes the checker, builds its model and guide, loads synthetic data of
the declared shapes and supports (`synthetic_data`), and traces the guide and the
model replayed on it with vectorised particles and enumeration, as a fit evaluates
them.
"""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

from fuzz_reference import check_lets

from compiler import PplError, compile_file, compile_source
from compiler.frontend import constants, distributions, ir
from compiler.frontend.distributions import TABLE as DISTRIBUTIONS
from compiler.frontend.functions import TABLE as FUNCTIONS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = [p.read_text() for p in sorted([*ROOT.glob("specs/*.ppl"), *ROOT.glob("specs/posteriordb/*.ppl")])]

# Mutations -------------------------------------------------------------------------

TOKEN = re.compile(r"#[^\n]*|[A-Za-z_][A-Za-z0-9_]*|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|\n|[ \t]+|.")
NUMBERS = ["0", "1", "2", "0.5", "3.0", "1e-3", "1e308", "1e309", "1e-320", "1e-400", "9223372036854775807",
           "9223372036854775808", "1" * 30, "0.0", "00", "1e3"]
OPERATORS = ["+", "-", "*", "/", "^", "@"]
PIECES = ["[i]", "[0]", "[k]", "[i, k]", "[N]", "(", ")", ",", "~", "=", ":", "<lower=0>", "[", "]", "\n",
          "sqrt(", "exp(", "sum(", "-", "i", "k", "N", "K", "int", "real", "latent", "let", "observe", "data"]
VOCABULARY = [*DISTRIBUTIONS, *FUNCTIONS]
KEYWORDS = ["data", "latent", "param", "let", "observe", "int", "real", "lower", "upper"]


def mutated_spec(seed: int) -> str:
    """An example spec with one to three token-level edits: mostly a name, number or operator
    replaced by another of its kind or swapped with one (edits that often still check), else a
    token inserted, deleted or swapped with any other."""
    rng = random.Random(seed)
    tokens = TOKEN.findall(rng.choice(EXAMPLES))
    names = sorted({t for t in tokens if _kind(t) == "name"})
    for _ in range(rng.choice([1, 1, 2, 3])):
        meaningful = [n for n, t in enumerate(tokens) if _kind(t) != "blank"]
        position = rng.choice(meaningful)
        token = tokens[position]
        match rng.choice(["replace", "replace", "replace", "swap", "swap", "insert", "delete"]):
            case "replace":
                tokens[position] = _replacement(rng, token, names)
            case "swap":
                alike = [n for n in meaningful if _kind(tokens[n]) == _kind(token)]
                other = rng.choice(alike if rng.random() < 0.75 else meaningful)
                tokens[position], tokens[other] = tokens[other], token
            case "insert":
                tokens.insert(position, rng.choice([*names, *NUMBERS, *OPERATORS, *PIECES, *VOCABULARY]))
            case "delete":
                del tokens[position]
    return "".join(tokens)


def _kind(token: str) -> str:
    if token.isspace() or token.startswith("#"):
        return "blank"
    if token[0].isdigit() or (token[0] == "." and len(token) > 1):
        return "number"
    if token in KEYWORDS:
        return "keyword"
    if token[0].isalpha() or token[0] == "_":
        return "name"
    return "operator" if token in OPERATORS else "punctuation"


def _replacement(rng: random.Random, token: str, names: list[str]) -> str:
    match _kind(token):
        case "number":
            return rng.choice(NUMBERS)
        case "operator":
            return rng.choice(OPERATORS)
        case "name":
            return rng.choice(names if rng.random() < 0.7 else VOCABULARY)
        case "keyword":
            return rng.choice(KEYWORDS)
    return rng.choice([*OPERATORS, *PIECES])


# Generation ------------------------------------------------------------------------

SHAPES = [(), ("N",), ("K",), ("N", "K")]
ELEMENTWISE = [f.name for f in FUNCTIONS.values() if f.shape == "elementwise"]
REDUCTIONS = ["sum", "mean", "sd"]


class _Generator:
    """Statements drawn from the grammar, each using only names declared above it, with
    arguments of the right shape and in the right support most of the time."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.lines = ["data N: int", "data K: int", "data x: real[N]", "data X: real[N, K]", "data u: real",
                      "data g: int<lower=0, upper=K-1>[N]", "data S: real[K, K]"]
        # name -> (shape, base, positive)
        self.names: dict[str, tuple[tuple[str, ...], str, bool]] = {
            "x": (("N",), "real", False), "X": (("N", "K"), "real", False), "u": ((), "real", False),
            "N": ((), "int", True), "S": (("K", "K"), "real", False)}
        self.count = 0

    def spec(self) -> str:
        for _ in range(self.rng.randint(2, 8)):
            self.rng.choice([self.latent, self.latent, self.let, self.observe, self.observe, self.param])()
        return "\n".join(self.lines) + "\n"

    def fresh(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    # Statements

    def latent(self) -> None:
        shape = self.rng.choice([(), ("K",), ("N",)])
        name = self.fresh("z")
        subscripts = f"[{', '.join(shape)}]" if shape else ""
        kind = self.rng.choice(["real", "positive", "unit", "simplex", "mvn", "discrete", "uniform"])
        match kind:
            case "real":
                family = self.rng.choice(["Normal", "Cauchy", "Laplace", "StudentT"])
                call = (f"StudentT({self.positive(())}, {self.expr(())}, {self.positive(())})" if family == "StudentT"
                        else f"{family}({self.expr(())}, {self.positive(())})")
            case "positive":
                family = self.rng.choice(["HalfNormal", "Exponential", "Gamma", "LogNormal", "InverseGamma", "HalfCauchy"])
                arity = 2 if family in ("Gamma", "InverseGamma") else 1
                call = (f"LogNormal({self.expr(())}, {self.positive(())})" if family == "LogNormal"
                        else f"{family}({', '.join(self.positive(()) for _ in range(arity))})")
            case "unit":
                call = f"Beta({self.positive(())}, {self.positive(())})"
            case "uniform":
                call = self.rng.choice(["Uniform(0, 1)", "Uniform(-2, u + 3)", "Uniform(1, 2.5)"])
            case "simplex":
                call, shape = f"Dirichlet({self.positive(('K',))})", shape + ("K",)
            case "mvn":
                call, shape = f"MultivariateNormal({self.expr(('K',))}, {self.covariance()})", shape + ("K",)
            case "discrete":
                name, subscripts, shape = self.fresh("c"), "" if shape == ("N",) else subscripts, shape[:1]
                call = self.rng.choice([f"Bernoulli({self.probability(())})", f"Categorical({self.simplex()})",
                                        f"Binomial(3, logits={self.expr(())})"])
        self.lines.append(f"latent {name}{subscripts} ~ {call}")
        base = "int" if kind == "discrete" else "real"
        self.names[name] = (shape, base, kind in ("positive", "unit", "simplex"))

    def let(self) -> None:
        name = self.fresh("v")
        if self.rng.random() < 0.4:
            value = self.expr((), indexed={"i": "N"})
            self.lines.append(f"let {name}[i] = {value}")
            self.names[name] = (("N",), "real", False)
            return
        shape = self.rng.choice(SHAPES)
        self.lines.append(f"let {name} = {self.expr(shape)}")
        self.names[name] = (shape, "real", False)

    def param(self) -> None:
        name = self.fresh("p")
        shape = self.rng.choice([(), ("K",)])
        dims = f"[{shape[0]}]" if shape else ""
        if self.rng.random() < 0.5:
            self.lines.append(f"param {name}: real<lower=0>{dims} = {self.rng.choice(['1', '0.5', 'u * u + 1'])}")
        else:
            self.lines.append(f"param {name}: real{dims} = {self.rng.choice(['0', 'u', 'mean(x)'])}")
        self.names[name] = (shape, "real", False)

    def observe(self) -> None:
        name = self.fresh("y")
        indexed = self.rng.random() < 0.5
        rng = self.rng
        kind = rng.choice(["Normal", "Poisson", "Bernoulli", "Binomial", "Gamma", "Beta", "Categorical", "MVN",
                           "StudentT", "NegativeBinomial"])
        shape = "[N, K]" if kind == "MVN" else "[N]"
        base = "real" if kind in ("Normal", "Gamma", "Beta", "MVN", "StudentT") else "int"
        self.lines.append(f"data {name}: {base}{shape}")
        context = {"i": "N"} if indexed else None
        element = () if indexed else ("N",)
        match kind:
            case "Normal":
                call = f"Normal({self.expr(element, context)}, {self.positive(element, context)})"
            case "StudentT":
                call = f"StudentT({self.positive(())}, {self.expr(element, context)}, {self.positive(())})"
            case "Poisson":
                call = f"Poisson({self.positive(element, context)})"
            case "NegativeBinomial":
                call = f"NegativeBinomial({self.positive(())}, logits={self.expr(element, context)})"
            case "Bernoulli":
                call = rng.choice([f"Bernoulli({self.probability(element, context)})",
                                   f"Bernoulli(logits={self.expr(element, context)})"])
            case "Binomial":
                call = f"Binomial(4, {self.probability(element, context)})"
            case "Gamma":
                call = f"Gamma({self.positive(element, context)}, {self.positive(())})"
            case "Beta":
                call = f"Beta({self.positive(element, context)}, {self.positive(())})"
            case "Categorical":
                call = f"Categorical({self.simplex()})"
            case "MVN":
                call = f"MultivariateNormal({self.expr(('K',))}, {self.covariance()})"
        self.lines.append(f"observe {name}{'[i]' if indexed else ''} ~ {call}")

    # Expressions

    def expr(self, shape: tuple[str, ...], indexed: dict[str, str] | None = None, depth: int = 0) -> str:
        """An expression of `shape` (per element of `indexed`'s index variables, where given)."""
        rng = self.rng
        choices = [self.leaf] * 3
        if depth < 3:
            choices += [self.binary, self.binary, self.function, self.power, self.negate]
            if not shape:
                choices += [self.reduction, self.dot]
            if shape in (("N",), ("K",)):
                choices.append(self.matmul)
        return rng.choice(choices)(shape, indexed, depth)

    def leaf(self, shape, indexed, depth) -> str:
        rng = self.rng
        options = [name for name, (s, _, _) in self.names.items() if s == shape]
        if indexed and not shape:
            options += [f"{name}[i]" for name, (s, _, _) in self.names.items() if s == ("N",)]
            options += ["i", "X[i, 0]"]
            options += [f"{name}[{rng.choice(['g[i]', 'K - 1 - g[i]'])}]"
                        for name, (s, _, _) in self.names.items() if s == ("K",)]
        if indexed and shape == ("K",):
            options += ["X[i]"]
        if not shape:
            options += ["0", "1", "2.5", "0.5", "u", "N", "x[0]", "x[N - 1]", "1e-3"]
        if shape == ("N",):
            options += [f"{name}[{rng.choice(['g', 'K - 1 - g'])}]" for name, (s, _, _) in self.names.items()
                        if s == ("K",)]
        if shape and shape[-1] in ("N", "K"):
            options.append(f"ones({', '.join(shape)})")
        return rng.choice(options) if options else "1"

    def binary(self, shape, indexed, depth) -> str:
        operator = self.rng.choice(["+", "-", "*", "/"])
        other = self.rng.choice([shape, ()])
        left, right = self.expr(shape, indexed, depth + 1), self.expr(other, indexed, depth + 1)
        if self.rng.random() < 0.5:
            left, right = right, left
        return f"({left} {operator} {right})" if self.rng.random() < 0.5 else f"{left} {operator} {right}"

    def power(self, shape, indexed, depth) -> str:
        exponent = self.rng.choice(["2", "0.5", "-1", self.expr((), indexed, depth + 1)])
        return f"({self.expr(shape, indexed, depth + 1)})^{exponent}" if self.rng.random() < 0.5 else \
            f"{self.expr(shape, indexed, depth + 1)}^({exponent})"

    def negate(self, shape, indexed, depth) -> str:
        return f"-{self.expr(shape, indexed, depth + 1)}"

    def function(self, shape, indexed, depth) -> str:
        if shape and self.rng.random() < 0.2:
            return f"softmax({self.expr(shape, indexed, depth + 1)})"
        return f"{self.rng.choice(ELEMENTWISE)}({self.expr(shape, indexed, depth + 1)})"

    def reduction(self, shape, indexed, depth) -> str:
        return f"{self.rng.choice(REDUCTIONS)}({self.expr(self.rng.choice(SHAPES[1:]), indexed, depth + 1)})"

    def dot(self, shape, indexed, depth) -> str:
        vector = self.rng.choice([("N",), ("K",)])
        if indexed and self.rng.random() < 0.5:
            return f"X[i] @ {self.expr(('K',), None, depth + 1)}"
        return f"dot({self.expr(vector, indexed, depth + 1)}, {self.expr(vector, indexed, depth + 1)})"

    def matmul(self, shape, indexed, depth) -> str:
        if shape == ("N",):
            return f"X @ {self.expr(('K',), indexed, depth + 1)}"
        return self.rng.choice([f"{self.expr(('N',), indexed, depth + 1)} @ X",
                                f"S @ {self.expr(('K',), indexed, depth + 1)}"])

    def positive(self, shape, indexed=None) -> str:
        options = [f"exp({self.expr(shape, indexed, 2)})", f"softplus({self.expr(shape, indexed, 2)})",
                   f"{self.expr(shape, indexed, 2)}^2 + 0.1"]
        options += [name for name, (s, base, positive) in self.names.items() if s == shape and positive]
        if not shape:
            options += ["1", "2.5", "0.1"]
        return self.rng.choice(options)

    def probability(self, shape, indexed=None) -> str:
        return self.rng.choice([f"sigmoid({self.expr(shape, indexed, 2)})", "0.3"] +
                               [n for n, (s, _, positive) in self.names.items() if s == shape and positive
                                and n.startswith("z")])

    def simplex(self) -> str:
        options = [f"softmax({self.expr(('K',), None, 2)})"]
        options += [n for n, (s, _, positive) in self.names.items() if s == ("K",) and positive]
        return self.rng.choice(options)

    def covariance(self) -> str:
        return self.rng.choice([
            "covariance_matrix=S", f"covariance_matrix={self.positive(())} * S",
            f"covariance_matrix={self.positive(())}^2 * exp(-S / (2 * {self.positive(())}^2)) + S",
            "precision_matrix=S"])


def generated_spec(seed: int) -> str:
    return _Generator(random.Random(seed)).spec()


# Random text -------------------------------------------------------------------------

def random_text(seed: int) -> str | bytes:
    """Random tokens, random characters, or random bytes (read as a spec file)."""
    rng = random.Random(seed)
    match rng.choice(["tokens", "characters", "bytes"]):
        case "tokens":
            pool = [*NUMBERS, *OPERATORS, *PIECES, *VOCABULARY, "lower", "upper", "x", "y", "mu", "__import__", "lambda"]
            return " ".join(rng.choice(pool) for _ in range(rng.randint(0, 40)))
        case "characters":
            alphabet = "abcdxyzNK0123456789.eE+-*/^@()[]<>=~,:#_ \t\n\r\f\x00é\ufeffх"
            return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
    return rng.choice(EXAMPLES).encode()[: rng.randint(0, 200)] + rng.randbytes(rng.randint(1, 40))


# Synthetic data ----------------------------------------------------------------------


def synthetic_data(model: ir.Model, rng: random.Random) -> dict:
    """Data of the declared shapes: sizes 1 to 3, values inside their declared bounds, index
    arrays inside the axis they index, observed arrays inside their distribution's support;
    square matrices symmetric positive definite (a covariance is the likeliest use)."""
    values: dict = {}
    size_names = _size_names(model)
    for decl in model.data:
        if not decl.shape:
            values[decl.name] = _scalar(decl, values, rng, is_size=decl.name in size_names)
            continue
        shape = tuple(values.get(d, 1) if isinstance(d, str) else d for d in decl.shape)
        values[decl.name] = _array(decl, shape, model, values, rng)
    return values


def _size_names(model: ir.Model) -> set[str]:
    """Int data that some shape, plate or `ones(...)` uses as a size (data of size 0 or less
    are the data checks' business, not the fuzzer's)."""
    shapes = [decl.shape for decl in model.data]
    for statement in model.statements:
        shapes += [getattr(statement, "shape", ()), tuple(p.size for p in getattr(statement, "plates", ()))]
        values = [getattr(statement, name, None) for name in ("value", "initial")]
        values += [e for _, e in statement.distribution.arguments] if hasattr(statement, "distribution") else []
        shapes += [e.type.shape for value in values if value is not None for e in _subexpressions(value)]
    return {d for shape in shapes for d in shape if isinstance(d, str)}


def _subexpressions(e: ir.Expr):
    yield e
    for child in (getattr(e, "base", None), getattr(e, "left", None), getattr(e, "right", None),
                  getattr(e, "operand", None), *getattr(e, "subscripts", ()), *getattr(e, "arguments", ())):
        if child is not None:
            yield from _subexpressions(child)


def _scalar(decl: ir.DataDecl, values: dict, rng: random.Random, is_size: bool):
    low, high = _bound(decl.lower, values), _bound(decl.upper, values)
    if decl.base == "int":
        low = max(1 if is_size else -2, math.ceil(low) if low is not None else -2)
        high = min(3, math.floor(high)) if high is not None else low + 3
        return rng.randint(low, max(low, high))
    return _real_between(low, high, rng)


def _bound(bound: ir.Expr | None, values: dict) -> float | None:
    if bound is None:
        return None
    try:
        value = constants.constant_value(bound, values)
    except constants.NotConstant:
        return None
    return value if math.isfinite(value) else None


def _real_between(low: float | None, high: float | None, rng: random.Random) -> float:
    if low is not None and high is not None:
        return rng.uniform(low, high) if low <= high else low
    if low is not None:
        return low + rng.expovariate(1.0)
    if high is not None:
        return high - rng.expovariate(1.0)
    return rng.gauss(0, 1)


def _array(decl: ir.DataDecl, shape: tuple[int, ...], model: ir.Model, values: dict, rng: random.Random):
    count = math.prod(shape)
    if decl.index_range is not None:
        length = values.get(decl.index_range, 1) if isinstance(decl.index_range, str) else decl.index_range
        flat = [rng.randrange(max(length, 1)) for _ in range(count)]
    elif (support := _observed_support(decl.name, model, values)) is not None:
        flat = [support(rng) for _ in range(count)]
    elif len(shape) == 2 and shape[0] == shape[1]:
        flat = [2.0 if row == column else 0.5 for row in range(shape[0]) for column in range(shape[1])]
    elif decl.base == "int":
        low, high = _bound(decl.lower, values), _bound(decl.upper, values)
        low = math.ceil(low) if low is not None else -2
        high = math.floor(high) if high is not None else low + 4
        flat = [rng.randint(low, max(low, high)) for _ in range(count)]
    else:
        flat = [_real_between(_bound(decl.lower, values), _bound(decl.upper, values), rng) for _ in range(count)]
    if _observed_kind(decl.name, model) == distributions.SIMPLEX:
        flat = _rows_summing_to_one(flat, shape[-1])
    return _nested(flat, shape)


def _observed_kind(name: str, model: ir.Model) -> str | None:
    for observe in model.observed:
        target = observe.value.base if isinstance(observe.value, ir.Subscript) else observe.value
        if isinstance(target, ir.Variable) and target.name == name:
            return observe.distribution.support.kind
    return None


def _observed_support(name: str, model: ir.Model, values: dict):
    """A draw from the support of the distribution `name` is observed under, if it is observed."""
    for observe in model.observed:
        target = observe.value.base if isinstance(observe.value, ir.Subscript) else observe.value
        if not (isinstance(target, ir.Variable) and target.name == name):
            continue
        use = observe.distribution
        match use.support.kind:
            case distributions.BOOLEAN:
                return lambda rng: rng.randint(0, 1)
            case distributions.NONNEGATIVE_INTEGER:
                return lambda rng: rng.randint(0, 5)
            case distributions.INTEGER_INTERVAL:
                total = _bound(use.support.high, values)
                return lambda rng: rng.randint(0, int(total) if total is not None else 1)
            case distributions.CATEGORY:
                probs = dict(use.arguments).get("probs", dict(use.arguments).get("logits"))
                categories = probs.type.shape[-1] if probs is not None else 1
                categories = values.get(categories, 1) if isinstance(categories, str) else categories
                return lambda rng: rng.randrange(max(categories, 1))
            case distributions.POSITIVE:
                return lambda rng: rng.uniform(0.1, 3.0)
            case distributions.UNIT_INTERVAL | distributions.SIMPLEX:
                return lambda rng: rng.uniform(0.05, 0.95)
            case distributions.INTERVAL:
                low, high = _bound(use.support.low, values), _bound(use.support.high, values)
                return lambda rng: _real_between(low, high, rng)
        return lambda rng: rng.gauss(0, 1)
    return None


def _rows_summing_to_one(flat: list[float], width: int) -> list[float]:
    rows = [flat[start:start + width] for start in range(0, len(flat), width)]
    return [value / sum(row) for row in rows for value in row]


def _nested(flat: list, shape: tuple[int, ...]):
    if len(shape) == 1:
        return flat
    width = math.prod(shape[1:])
    return [_nested(flat[start:start + width], shape[1:]) for start in range(0, len(flat), width)]


# Running -----------------------------------------------------------------------------

# What the traced code may raise on values that are legitimately outside what a
# distribution accepts (a fit reports these as located errors, exit 4): Pyro's
# validation of arguments and values, a computed index outside its axis, a matrix
# torch cannot factor.
ALLOWED_AT_RUN_TIME = re.compile(
    r"Expected parameter|Expected value argument|The value argument must be within the support"
    r"|is out of range for an axis of length|not positive-definite|positive definite|singular")


def run_case(spec: str | bytes, seed: int, folder: Path) -> str:
    """Compile, build, load synthetic data and trace; returns how it ended ("spec error",
    "data error", "run-time refusal", "traced"). Any other exception propagates."""
    import pyro

    pyro.set_rng_seed(seed)
    try:
        program = _compile(spec, folder)
    except PplError as error:
        assert error.message
        return "spec error"
    program.model, program.guide  # noqa: B018 - building the functions is part of the property
    raw = synthetic_data(program.ir, random.Random(seed))
    try:
        data = program.load_data(raw)
    except PplError as error:
        assert error.message
        return "data error"
    try:
        model_trace = trace(program, data)
    except (ValueError, IndexError, RuntimeError) as error:
        if not ALLOWED_AT_RUN_TIME.search(str(error)):
            raise
        return "run-time refusal"
    check_lets(program, raw, data, model_trace)
    return "traced"


def _compile(spec: str | bytes, folder: Path):
    if isinstance(spec, str):
        return compile_source(spec, "fuzz.ppl")
    path = folder / "fuzz.ppl"
    path.write_bytes(spec)
    return compile_file(path)


def trace(program, data):
    """The guide traced, and the model (and the collapsed model, where there is one) replayed
    on it, under two vectorised particles and parallel enumeration, as a fit evaluates them.
    Returns the model's trace."""
    import pyro
    import torch
    from pyro import poutine

    pyro.clear_param_store()  # a param of the last case may have the same name and another shape
    nesting = program.ir.max_plate_nesting
    scored_model, scored_data = program.compiled.scored(data)
    with torch.no_grad(), pyro.validation_enabled(True), pyro.plate("particles", 2, dim=-(nesting + 1)):
        guide_trace = poutine.trace(program.guide).get_trace(data)
        traces = []
        for model, model_data in {program.model: data, scored_model: scored_data}.items():
            replayed = poutine.enum(poutine.replay(model, guide_trace), first_available_dim=-(nesting + 2))
            traces.append(poutine.trace(replayed).get_trace(model_data))
            traces[-1].log_prob_sum()
    return traces[0]
