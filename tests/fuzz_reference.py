"""What the generated code must compute, computed another way: the IR evaluated with numpy,
each index variable a Python loop over its elements, whole arrays broadcast as numpy does.
The fuzzer compares every `let` (transformed data as loaded, the model's deterministic sites
for each particle) with it, so a layout mistake in codegen (a transposed broadcast, lost
parentheses) is a different number rather than code that merely runs.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.special import log_ndtr

from compiler.frontend import functions, ir


def _elementwise(scalar):
    """A function of math applied to each element (numpy has no erf or lgamma of its own)."""
    def applied(x):
        return np.vectorize(scalar, otypes=[float])(x)
    return applied


def _erfinv_scalar(y: float) -> float:
    """The inverse of erf by bisection (to float precision): math has no erfinv."""
    if not -1 <= y <= 1:
        return math.nan
    if abs(y) == 1:
        return math.copysign(math.inf, y)
    low, high = -6.0, 6.0
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if math.erf(middle) < y else (low, middle)
    return (low + high) / 2


def _lgamma_scalar(x: float) -> float:
    try:
        return math.lgamma(x)
    except ValueError:  # a pole: 0, -1, -2, ...
        return math.inf


_erf, _erfinv, _lgamma = _elementwise(math.erf), _elementwise(_erfinv_scalar), _elementwise(_lgamma_scalar)


ELEMENTWISE = {
    "exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1, "sqrt": np.sqrt, "abs": np.abs,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "logit": lambda x: np.log(x / (1 - x)), "tanh": np.tanh,
    "softplus": lambda x: np.logaddexp(0, x),
    "inv_logit": lambda x: 1 / (1 + np.exp(-x)), "log_inv_logit": lambda x: -np.logaddexp(0, -x),
    "log1m_inv_logit": lambda x: -np.logaddexp(0, x), "log1m": lambda x: np.log1p(-x),
    "Phi": lambda x: 0.5 * (1 + _erf(x / math.sqrt(2))), "inv_Phi": lambda x: math.sqrt(2) * _erfinv(2 * x - 1),
    "Phi_approx": lambda x: 1 / (1 + np.exp(-(0.07056 * x ** 3 + 1.5976 * x))), "lgamma": _lgamma,
    "square": np.square, "inv": lambda x: 1 / x,
    "std_normal_lcdf": log_ndtr, "std_normal_lccdf": lambda x: log_ndtr(-x),
}
# Several arguments, broadcast: (x, mu, sigma) -> the value.
BROADCASTS = {
    "normal_lcdf": lambda x, mu, sigma: log_ndtr((x - mu) / sigma),
    "normal_lccdf": lambda x, mu, sigma: log_ndtr((mu - x) / sigma),
    "log_mix": lambda theta, a, b: np.logaddexp(np.log(theta) + a, np.log1p(-theta) + b),
}
REDUCTIONS = {"sum": np.sum, "mean": np.mean, "sd": lambda x: np.std(x, ddof=1),
              "log_sum_exp": lambda x: np.logaddexp.reduce(x, axis=None), "max": np.max, "min": np.min}
VECTORS = {
    "softmax": lambda x: np.exp(x - x.max(axis=-1, keepdims=True)) / np.exp(x - x.max(axis=-1, keepdims=True)).sum(
        axis=-1, keepdims=True),
    "log_softmax": lambda x: x - np.logaddexp.reduce(x, axis=-1, keepdims=True),
    "cumulative_sum": lambda x: np.cumsum(x, axis=-1),
}


def _cholesky(a: np.ndarray) -> np.ndarray:
    """The lower Cholesky factor of each matrix; NaN for one that is not positive definite."""
    stacked = a.reshape(-1, *a.shape[-2:])
    factors = np.full_like(stacked, np.nan)
    for k, matrix in enumerate(stacked):
        try:
            factors[k] = np.linalg.cholesky(matrix)
        except np.linalg.LinAlgError:
            pass
    return factors.reshape(a.shape)


def _exp_quad_cov(x: np.ndarray, magnitude, length_scale) -> np.ndarray:
    """Stan's gp_exp_quad_cov, written out."""
    return magnitude ** 2 * np.exp(-(x[..., :, None] - x[..., None, :]) ** 2 / (2 * length_scale ** 2))


class Incomparable(Exception):
    """Nothing to compare: a position outside its axis (the generated code refuses it too), an
    enumerated latent (its trace holds all its values at once), or an ODE's solution (a solver's
    approximation: tests/test_ode.py holds it to closed forms)."""


class Reference:
    """Values by name (data, latents, params, and the lets as they are computed) and sizes."""

    def __init__(self, values: dict[str, np.ndarray]):
        self.values = values

    def size(self, dim: ir.Dim) -> int:
        name, offset = ir.size_terms(dim)  # `N`, `3` or `T - 1`
        return offset if name is None else int(self.values[name]) + offset

    def shape(self, shape: ir.Shape) -> tuple[int, ...]:
        return tuple(self.size(d) for d in shape)

    def let(self, let: ir.Let) -> np.ndarray:
        """The let's value: one element per combination of its index variables."""
        if let.recurrence is not None:
            return self._recurrence(let)
        if not let.plates:
            return self.evaluate(let.value, {})
        sizes = [self.size(p.size) for p in let.plates]
        elements = [self.evaluate(let.value, dict(zip((p.variable for p in let.plates), index)))
                    for index in itertools.product(*map(range, sizes))]
        return np.array(elements, dtype=float).reshape(tuple(sizes) + np.shape(elements[0]))

    def _recurrence(self, let: ir.Let) -> np.ndarray:
        """A recurrence element by element, a loop over its positions: each step evaluated with the
        previous element filled in at its own position (not a scan, as the generated code does)."""
        elements = [float(self.evaluate(e, {})) for e in let.recurrence.initial]
        previous = np.zeros(self.size(let.recurrence.length))
        for position in range(len(previous)):
            previous[position] = elements[-1]
            self.values[let.recurrence.previous] = previous
            elements.append(float(np.broadcast_to(self.evaluate(let.value, {}), previous.shape)[position]))
        return np.array(elements)

    def evaluate(self, e: ir.Expr, index: dict[str, int]):
        with np.errstate(all="ignore"):
            return self._evaluate(e, index)

    def _evaluate(self, e: ir.Expr, index: dict[str, int]):
        match e:
            case ir.Literal_(value=value):
                return value
            case ir.Variable(name=name):
                return self.values[name]
            case ir.Position(plate=plate):
                return index[plate.variable]
            case ir.Subscript(base=base, subscripts=subscripts):
                array = np.asarray(self._evaluate(base, index), dtype=float)
                positions = tuple(self._slice(s, index) if isinstance(s, ir.Slice)
                                  else self._positions(self._evaluate(s, index), self.size(base.type.shape[axis]))
                                  for axis, s in enumerate(subscripts))
                return array[positions]
            case ir.Call(function=name, arguments=arguments):
                return self._call(functions.TABLE[name], [self._evaluate(a, index) for a in arguments], e)
            case ir.Negate(operand=operand):
                return -np.asarray(self._evaluate(operand, index), dtype=float)
            case ir.Binary(operator=operator, left=left, right=right):
                a = np.asarray(self._evaluate(left, index), dtype=float)
                b = np.asarray(self._evaluate(right, index), dtype=float)
                return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power,
                        "@": np.matmul}[operator](a, b)
            case ir.Vector(elements=elements):
                parts = (np.asarray(self._evaluate(element, index), dtype=float) for element in elements)
                return np.stack(np.broadcast_arrays(*parts), -1)
            case ir.Solve():
                raise Incomparable
        raise AssertionError(e)

    def _slice(self, s: ir.Slice, index: dict[str, int]) -> slice:
        start, stop = (None if end is None else int(self._evaluate(end, index)) for end in (s.start, s.stop))
        return slice(start, stop)

    @staticmethod
    def _positions(value, length: int):
        positions = np.asarray(value)
        if positions.size and (positions.min() < 0 or positions.max() >= length or not np.all(np.isfinite(positions))):
            raise Incomparable
        return positions.astype(np.int64)

    def _call(self, function: functions.Function, arguments: list, e: ir.Call):
        match function.shape:
            case functions.CONSTRUCT:
                return (np.ones if function.name == "ones" else np.zeros)(self.shape(e.type.shape))
            case functions.REDUCE:
                return REDUCTIONS[function.name](np.asarray(arguments[0], dtype=float))
            case functions.BROADCAST:
                return BROADCASTS[function.name](*(np.asarray(a, dtype=float) for a in arguments))
            case functions.DOT:
                return np.sum(np.asarray(arguments[0], dtype=float) * np.asarray(arguments[1], dtype=float), axis=-1)
            case functions.VECTOR:
                return VECTORS[function.name](np.asarray(arguments[0], dtype=float))
            case functions.IDENTITY:
                return np.eye(self.size(e.type.shape[0]))
            case functions.DIAGONAL:
                x = np.asarray(arguments[0], dtype=float)
                return x[..., None] * np.eye(x.shape[-1])
            case functions.TRANSPOSE:
                return np.swapaxes(np.asarray(arguments[0], dtype=float), -1, -2)
            case functions.SQUARE:
                return _cholesky(np.asarray(arguments[0], dtype=float))
            case functions.DIAGONAL_PRODUCT:
                return np.asarray(arguments[0], dtype=float)[..., :, None] * np.asarray(arguments[1], dtype=float)
            case functions.COVARIANCE:
                return _exp_quad_cov(*(np.asarray(a, dtype=float) for a in arguments))
        return ELEMENTWISE[function.name](np.asarray(arguments[0], dtype=float))


def same(actual, expected) -> bool:
    """Equal to rounding; nan where nan; infinite where infinite, of either sign (an int 0
    negated is 0 in an integer tensor and -0.0 in a float one, which 1/x tells apart)."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    if actual.size != expected.size:
        return False
    actual = actual.reshape(expected.shape)
    special = (np.isnan(actual) & np.isnan(expected)) | (np.isinf(actual) & np.isinf(expected))
    close = np.isclose(actual, expected, rtol=1e-6, atol=1e-9) & np.isfinite(expected) & np.isfinite(actual)
    return bool(np.all(close | special))


def check_lets(program, raw_data: dict, data, model_trace) -> None:
    """Each transformed let as loaded, and each let of the model for each particle, equals the
    reference; raises AssertionError naming the first that does not."""
    model = program.ir
    values = {name: np.asarray(value, dtype=float) for name, value in raw_data.items()}
    for particle in (0, 1):
        reference = Reference(dict(values))
        for statement in model.statements:
            try:
                _check_statement(statement, reference, data, model_trace, particle)
            except Incomparable:
                return


def _check_statement(statement, reference: Reference, data, model_trace, particle: int) -> None:
    match statement:
        case ir.Latent(enumerated=True):
            raise Incomparable
        case ir.Latent() | ir.Param():
            value = model_trace.nodes[statement.name]["value"]
            reference.values[statement.name] = _element(value, particle, reference.shape(statement.shape))
        case ir.Let():
            expected = reference.let(statement)
            reference.values[statement.name] = expected
            actual = data[statement.name] if statement.transformed_data else model_trace.nodes[statement.name]["value"]
            actual = _element(actual, particle, np.shape(expected))
            assert same(actual, expected), (
                f"let {statement.name} computes\n{actual}\nwhere numpy computes\n{expected}")


def _element(value, particle: int, shape: tuple[int, ...]) -> np.ndarray:
    """The value for one particle, in its IR shape (the particle dim and unit dims dropped)."""
    array = value.detach().numpy() if hasattr(value, "detach") else np.asarray(value, dtype=float)
    count = math.prod(shape)
    if array.size == 2 * count:
        return array.reshape((2, *shape))[particle]
    assert array.size == count, f"a value of shape {array.shape} where {shape} was declared"
    return array.reshape(shape)
