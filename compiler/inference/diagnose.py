"""What went wrong in a fit, said at the statement where it went wrong: distributions that
refuse their arguments at the initial values, non-finite ELBOs, plates with no
elements. Turns Pyro's and torch's messages into pplc's `FitError`."""

from __future__ import annotations

import re
from typing import Any

import pyro
import torch
from pyro import poutine

from compiler.backend.build import CompiledModel
from compiler.backend.linear_normal import summarised
from compiler.errors import FitError
from compiler.frontend import ir
from compiler.inference import params
from compiler.inference.records import Objective


class Diverged(FitError):
    """A non-finite ELBO during the fit: worth one retry from a fresh start."""


def statements_fitted(compiled: CompiledModel) -> list:
    """The statements whose plates the fit's models declare: every latent, and every
    observation not scored from sufficient statistics."""
    return [s for s in compiled.ir.statements
            if isinstance(s, ir.Latent) or (isinstance(s, ir.Observe) and not summarised(s))]


def statements_of_model(compiled: CompiledModel) -> list:
    """The statements whose plates `model` declares (replayed for lets, run for predictions)."""
    return [s for s in compiled.ir.statements if isinstance(s, (ir.Latent, ir.Observe))]


def empty_plate(data, statements) -> tuple[Any, ir.Plate] | None:
    """A statement over a plate of size 0, and the plate: Pyro's plates refuse that
    size (they scale by full size / batch size), so the statement cannot be evaluated."""
    return next(((statement, plate) for statement in statements for plate in statement.plates
                 if int(data[plate.size] if isinstance(plate.size, str) else plate.size) == 0), None)


def refuse_empty_plates(data, statements) -> None:
    """Observations scored from sufficient statistics need no plate, and with no rows add
    nothing; a statement that needs an empty plate is a fitting error."""
    if found := empty_plate(data, statements):
        statement, plate = found
        raise FitError(f"'{statement.name}' ranges over {plate.size} = 0 elements, and Pyro's plates need at "
                       "least one; only an observe statement scored from sufficient statistics (its arguments "
                       "the same for every element, or a Normal mean of group effects linear in data) can have "
                       "none",
                       statement.span, f"give {plate.size} at least one element, or leave the statement out")


def initialise(compiled: CompiledModel, data, model=None) -> None:
    """Run the guide and the model (by default `compiled.model`) once, creating every
    pyro.param at its initial value so that even a first step that fails has a finite
    state to return to. A distribution that rejects its arguments or its data fails
    here, reported at its statement."""
    handlers = [poutine.trace(compiled.guide)]
    try:
        with torch.no_grad():
            guide_trace = handlers[0].get_trace(data)
            handlers.append(poutine.trace(poutine.replay(model or compiled.model, guide_trace)))
            handlers[1].get_trace(data).compute_log_prob()
    except (ValueError, RuntimeError, IndexError) as error:
        in_guide = len(handlers) == 1
        raise rejected(compiled, error, handlers[-1].msngr.trace.nodes, in_guide) from None


def checked_once():
    """Evaluations without Pyro's argument and support checks, for the fit's repeated ones:
    `initialise` ran the checks once, and the data were checked when they loaded (the check of
    Bernoulli's 0/1 observations alone cost about 8 % of a logistic regression's fit). An argument
    that leaves its support later gives a non-finite density, which the fit handles as it
    handles a refusal. Pyro calls outside the fit keep their checks."""
    return pyro.validation_enabled(False)


def rejected(compiled: CompiledModel, error: Exception, reached, in_guide: bool) -> FitError:
    """Name the statement whose distribution refused: the one named in Pyro's
    message, else the first whose site the run did not reach."""
    model_ir = compiled.ir
    order = model_ir.guided_latents if in_guide else [
        s for s in model_ir.statements if not getattr(s, "transformed_data", False)]
    site = site_in_message(compiled, str(error)) or next((s.name for s in order if s.name not in reached), None)
    where = f"'{site}'" if site else "the model"
    return FitError(f"{where} cannot be evaluated at the initial values: {_plain(error.__cause__ or error)}",
                    model_ir.site_spans.get(site) if site else None,
                    "check the arguments against what each distribution accepts (a scale > 0, "
                    "probabilities in [0, 1]); where they come from data, check the data")


_PARAMETER_REFUSED = re.compile(r"Expected parameter (\w+) .*? of distribution (\w+)\(.*?to satisfy the "
                                r"constraint (.+?), but found invalid values:\s*(.*)", re.S)


_VALUE_REFUSED = re.compile(r"Expected value argument .*? to be within the support \((.+?)\) of the "
                            r"distribution (\w+)", re.S)


def _plain(error: Exception) -> str:
    """Pyro's validation message in one line."""
    text = str(error)
    if match := _PARAMETER_REFUSED.search(text):
        name, family, constraint, found = match.groups()
        return f"the {name} of {family} must satisfy {constraint}, found {' '.join(found.split())[:60]}"
    if match := _VALUE_REFUSED.search(text):
        support, family = match.groups()
        return f"a value lies outside the support of {family} ({support})"
    return text.strip().splitlines()[0][:200] if text.strip() else type(error).__name__


def diverged(compiled: CompiledModel, objective: Objective, loss: float, step: int,
              last_finite: dict[str, torch.Tensor] | None = None) -> Diverged:
    """Put back the last finite state (where given), then name the site whose log-density
    is not finite there (the failing loss was computed at it), or whose guide parameters
    the failed update broke."""
    broken = params.non_finite()
    if last_finite is not None:
        params.restore(last_finite)
    site = nonfinite_site(compiled, objective) or (_latent_of(compiled, broken[0]) if broken else None)
    where = f" at site '{site}'" if site else ""
    return Diverged(f"the ELBO became {loss} at step {step + 1}{where}",
                    compiled.ir.site_spans.get(site) if site else None,
                    "try a smaller --lr, or check the priors and the scale of the data")


def _latent_of(compiled: CompiledModel, parameter: str) -> str | None:
    """The latent whose guide factor has `parameter`."""
    return next((latent for latent, names in compiled.code.guide_parameters.items() if parameter in names), None)


def nonfinite_site(compiled: CompiledModel, objective: Objective) -> str | None:
    try:
        with torch.no_grad():
            guide_trace = poutine.trace(compiled.guide).get_trace(objective.data)
            model_trace = poutine.trace(poutine.replay(objective.model, guide_trace)).get_trace(objective.data)
            for trace in (model_trace, guide_trace):
                trace.compute_log_prob()
                for name, site in trace.nodes.items():
                    if "log_prob" in site and not torch.isfinite(site["log_prob"]).all():
                        return name
    except (ValueError, RuntimeError) as error:  # a distribution rejected a non-finite argument
        return site_in_message(compiled, str(error))
    return None


def site_in_message(compiled: CompiledModel, message: str) -> str | None:
    return next((name for name in compiled.ir.site_spans if f"'{name}'" in message), None)
