"""Phase 2, check (truncation and censoring): `T[lo, hi]` and `censored[lo, hi]` after a
distribution, checked into the `ir.Restriction` of its use and the interval its values lie in."""

from __future__ import annotations

import dataclasses

from compiler.errors import PplError
from compiler.frontend import constants, distributions, ir, shapes, syntax
from compiler.frontend.expressions import Scope, depends_on_model


class RestrictionChecks:
    """The checker's methods for restrictions (a mixin of `check._ProgramChecker`, whose `_type` they use)."""

    def _restricted(self, use: ir.DistributionUse, restriction: syntax.Restriction, scope: Scope,
                    plates: tuple[ir.Plate, ...], latent: bool) -> ir.DistributionUse:
        """`use` truncated to, or censored at, the bounds of `T[lo, hi]` / `censored[lo, hi]`."""
        kind = ir.TRUNCATED if restriction.kind == "T" else ir.CENSORED
        if latent and kind == ir.CENSORED:
            raise PplError("a latent cannot be censored: censoring describes how data were recorded",
                           restriction.span, "to restrict a latent's values, truncate it: T[lo, hi]")
        if use.name not in distributions.WITH_CDF:
            raise PplError(f"{use.name} cannot be {kind}: torch has no usable CDF for it", restriction.span,
                           f"the distributions that can be {kind}: {', '.join(distributions.WITH_CDF)}")
        if restriction.lower is None and restriction.upper is None:
            raise PplError(f"{restriction.kind}[, ] has no bound, so it changes nothing", restriction.span,
                           f"give one bound or both: {restriction.kind}[0, ], {restriction.kind}[, 10]")
        lower, upper = (None if b is None else self._bound(b, scope, plates, latent)
                        for b in (restriction.lower, restriction.upper))
        checked = ir.Restriction(kind, lower, upper, restriction.span)
        positive = distributions.TABLE[use.name].support == distributions.POSITIVE
        unusable = constants.restriction_unusable(checked, {}, positive)
        if unusable:
            raise PplError(f"these bounds do not fit {use.name}: {unusable}", restriction.span,
                           "write the lower bound first; leave out a bound that bounds nothing")
        return dataclasses.replace(use, restriction=checked, support=_restricted_support(use, checked, latent))

    def _bound(self, bound: syntax.Expr, scope: Scope, plates: tuple[ir.Plate, ...], latent: bool) -> ir.Expr:
        """A bound: one number for each element of the statement; a latent's must be one number
        that the data fix, as the guide draws inside them before the model runs."""
        typed = self._type(bound, scope)
        if latent and (typed.type.batched or typed.type.shape or depends_on_model(typed)):
            raise PplError("the bounds of a truncated latent must be one number, from data alone", bound.span,
                           "its guide draws inside them before the model runs; use numbers or scalar data")
        if typed.type.shape and (typed.type.batched
                                 or not shapes.broadcasts_to(typed.type.shape, tuple(p.size for p in plates))):
            raise PplError(f"a bound must be one number per element, got {shapes.show(typed.type.shape)}",
                           bound.span, "index the array with the statement's index variables: c[i]")
        return typed


def restriction_bounds(restriction: syntax.Restriction | None) -> list[syntax.Expr]:
    """The bounds written in `T[lo, hi]` or `censored[lo, hi]`: their index variables range too."""
    if restriction is None:
        return []
    return [b for b in (restriction.lower, restriction.upper) if b is not None]


def _restricted_support(use: ir.DistributionUse, restriction: ir.Restriction, latent: bool) -> ir.Support:
    """The interval the values lie in, where the data fix its bounds as one number (a latent's
    always do): a truncated latent's guide draws inside it, and data are checked against it."""
    if not latent and any(b.type.batched or b.type.shape or depends_on_model(b) for b in restriction.bounds):
        return use.support
    lower = restriction.lower
    if lower is None and use.support.kind == distributions.POSITIVE:
        lower = ir.Literal_(0, ir.Type("int", ()), restriction.span)
    return ir.Support(distributions.INTERVAL, lower, restriction.upper)
