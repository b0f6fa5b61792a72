"""Phase 2, check (chains): a latent recurrence of discrete states, a hidden Markov model.

`latent z[0] ~ Categorical(rho)` then `latent z[t in 1:T] ~ Categorical(theta[z[t - 1]])` is a
chain of states 0..K-1. It is summed out exactly, together with the observe statements that read
it (`observe y[t] ~ Normal(mu[z[t]], 1)`): codegen makes them one Pyro `DiscreteHMM` site, whose
log density is the forward algorithm. That needs the same transition at every step and each
emission reading the state at its own time only, so the checker refuses, where it is written,
a step that reads the time, a chain state read anywhere but in such an observe statement, and
a chain beside other summed-out latents (both would claim the same enumeration dim).
"""

from __future__ import annotations

from compiler.errors import PplError, Span
from compiler.frontend import distributions, ir, syntax
from compiler.frontend.analysis import statement_variables
from compiler.frontend.expressions import Symbol
from compiler.frontend.recurrences import StepPositions, syntax_nodes

CHAIN_DISTRIBUTIONS = ("Bernoulli", "Categorical")
CHAIN_HINT = "a chain's states are Categorical (0..K-1) or Bernoulli (0, 1)"


class ChainChecks:
    """The checker's part for chains, which `check._ProgramChecker` inherits; `RecurrenceChecks`
    hands it a latent recurrence whose first state is discrete."""

    symbols: dict[str, Symbol]
    statements: list[ir.Statement]
    steps: dict[str, Span]

    def _chain_distribution(self, use: ir.DistributionUse, call: syntax.Call) -> None:
        """A chain's states are Bernoulli's two or Categorical's K: a finite set Pyro's HMM sums over."""
        if not distributions.TABLE[use.name].is_finite:
            raise PplError(f"a chain of {use.name} states has infinitely many values and cannot be summed out",
                           call.function_span, CHAIN_HINT)
        if use.name not in CHAIN_DISTRIBUTIONS:
            raise PplError(f"a chain of {use.name} states is not supported", call.function_span, CHAIN_HINT)

    def _chain(self, decl: syntax.LatentDecl, initial: list[ir.DistributionUse], step: ir.DistributionUse,
               positions: StepPositions) -> None:
        """`latent z[0] ~ D0` then `latent z[t] ~ D(z[t - 1])`: one latent, states 0..K-1 at every position."""
        name = decl.name.id
        if len(initial) > 1:
            raise PplError(f"the chain '{name}' has {len(initial)} first states: a chain starts from one",
                           decl.name.span, f"give {name}[0] only; every later state follows from the one before")
        states = _state_count(initial[0])
        if _state_count(step) != states:
            raise PplError(f"the step of '{name}' draws from {_state_count(step)} states, its first state from "
                           f"{states}", decl.distribution.span, "a chain has one set of states 0..K-1")
        shape = (positions.length,)
        own_time = (ir.Plate(name, positions.length, -1, None),)  # read only as z[t], t over its positions
        self._declare(decl.name, Symbol("latent", ir.Type("int", shape), decl.name.span, own_time))
        self.steps[name] = decl.span
        recurrence = ir.Recurrence(tuple(initial), positions.previous, positions.steps, states)
        self.statements.append(ir.Latent(name, (), step, shape, False, decl.span, recurrence=recurrence))

    def _refuse_chain_at_another_time(self, observe: syntax.Observe) -> None:
        """An observation reads a chain at its own time point only: `z[t]`, t an index of its own."""
        chains = {s.name for s in self.statements if isinstance(s, ir.Latent) and s.chain}
        for node in syntax_nodes(observe.distribution):
            if (isinstance(node, syntax.Index) and isinstance(node.base, syntax.Name) and node.base.id in chains
                    and not (len(node.subscripts) == 1 and isinstance(node.subscripts[0], syntax.Name))):
                name = node.base.id
                raise PplError(f"an observation reads the chain '{name}' at its own time point only, as {name}[t]",
                               node.span, f"the chain is summed out over its states at each time point; its step "
                               f"reads {name}[t - 1]")

    def _refuse_time_in_step(self, name: str, variable: str, step: syntax.Expr) -> None:
        """The step reads the previous state and values fixed over time, never the time itself: Pyro's
        HMM takes one transition matrix for every step."""
        previous = {id(inner) for node in syntax_nodes(step) if _reads_self(node, name) for inner in syntax_nodes(node)}
        for node in syntax_nodes(step):
            if isinstance(node, syntax.Name) and node.id == variable and id(node) not in previous:
                raise PplError(f"the step of the chain '{name}' reads the time '{variable}' here: its transition "
                               "probabilities are the same at every step", node.span,
                               f"the step may read {name}[{variable} - 1] and values that do not change with {variable}")


def _state_count(use: ir.DistributionUse) -> ir.Dim:
    """How many states a draw of `use` takes: 2 for Bernoulli, the length of Categorical's probabilities."""
    if use.name == "Bernoulli":
        return 2
    (_, probabilities), = use.arguments
    return probabilities.type.shape[-1]


def check_chain_uses(statements: list[ir.Statement]) -> None:
    """Chains are read only as `z[t]` in observe statements over their own positions, one chain each,
    and no other latent is summed out beside them."""
    chains = {s.name for s in statements if isinstance(s, ir.Latent) and s.chain}
    if not chains:
        return
    for statement in statements:
        if isinstance(statement, ir.Latent) and statement.enumerated:
            raise PplError(f"'{statement.name}' is summed out beside the chain '{sorted(chains)[0]}'", statement.span,
                           "a model with a chain of discrete states has no other discrete latents")
        reads = [v for v in statement_variables(statement) if v.name in chains]
        if not reads:
            continue
        if not isinstance(statement, ir.Observe):
            raise PplError(f"the chain '{reads[0].name}' is summed out with the observations it feeds: it is read "
                           "only in their observe statements", reads[0].span,
                           f"observe data given {reads[0].name}[t] directly, e.g. "
                           f"observe y[t] ~ Normal(mu[{reads[0].name}[t]], sigma)")
        _check_emission(statement, reads)
    for chain in (s for s in statements if isinstance(s, ir.Latent) and s.chain):
        if not any(chain.name in {v.name for v in statement_variables(s)} for s in statements
                   if isinstance(s, ir.Observe)):
            raise PplError(f"the chain '{chain.name}' feeds no observation", chain.span,
                           f"observe data given {chain.name}[t], e.g. observe y[t] ~ Normal(mu[{chain.name}[t]], sigma); "
                           "a chain that nothing observes sums to 1")


def _check_emission(observe: ir.Observe, reads: list[ir.Variable]) -> None:
    chain = reads[0].name
    other = next((v for v in reads if v.name != chain), None)
    if other is not None:
        raise PplError(f"this observation reads two chains, '{chain}' and '{other.name}'", other.span,
                       "each observe statement is fed by one chain")
    if len(observe.plates) != 1 or observe.distribution.event_shape or observe.distribution.restriction:
        raise PplError(f"an observation fed by the chain '{chain}' is one number per time point, "
                       f"observe y[t] ~ D(... {chain}[t] ...)", observe.span,
                       "with one index, the chain's time, and no truncation or censoring")


def _reads_self(node: syntax.Expr, name: str) -> bool:
    return isinstance(node, syntax.Index) and isinstance(node.base, syntax.Name) and node.base.id == name
