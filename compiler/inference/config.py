"""How to fit: every option of `pplc run` and `Program.fit`, with its default, bounds and
help text, in one place (the command line builds its options from these fields)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Caps on steps when stopping at convergence: Adam steps, or L-BFGS iterations.
MAX_STEPS = {"adam": 10_000, "lbfgs": 1_000}


class RunConfig(BaseModel):
    """How to fit: every option the command line and `Program.fit` accept."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    optimizer: Literal["lbfgs", "adam"] | None = Field(
        None, description="lbfgs: L-BFGS on the ELBO over fixed antithetic draws (deterministic ADVI, see "
        "dadvi.py); adam: stochastic SVI steps with fresh draws each step. Default: lbfgs with the normal "
        "guide, adam with the native one (its Beta and Gamma draws are not smooth in their parameters "
        "at fixed randomness, which L-BFGS needs) and for batches that L-BFGS cannot take (fewer than 5 "
        "rows per coordinate, or no control variate: docs/scaling.md)")
    steps: int | None = Field(None, ge=1, description="a fixed number of steps (Adam steps or L-BFGS "
                              "iterations); default: until the ELBO stops improving, at most max_steps")
    max_steps: int | None = Field(None, ge=2, description="the cap on steps when stopping at convergence; "
                                  f"default {MAX_STEPS['lbfgs']} L-BFGS iterations (per round with batches) or "
                                  f"{MAX_STEPS['adam']} Adam steps")
    starts: int | None = Field(None, ge=1, description="L-BFGS runs from independent initialisations, the best "
                               "ELBO kept; default: 4 for models with enumerated latents (mixtures), else 1")
    tolerance: float = Field(1e-3, gt=0, description="Adam: relative ELBO change per 100 steps counted as level")
    lr: float = Field(0.05, gt=0, description="initial Adam learning rate")
    lr_decay: float = Field(0.1, gt=0, le=1, description="learning rate at the end, as a fraction of lr")
    particles: int | None = Field(None, ge=1, description="ELBO particles, vectorised; default: 32 for L-BFGS "
                                  "and 16 for Adam, fewer (down to 2 and 4) for data with over 62,500 and "
                                  "250,000 observations, but for L-BFGS a pair per coordinate while "
                                  "affordable (docs/inference.md)")
    average: float = Field(0.5, ge=0, lt=1, description="with fixed steps: the final fraction whose iterates "
                           "are averaged (when stopping at convergence, the whole refinement phase is)")
    seed: int = Field(0, ge=0, lt=2**31, description="random seed; retries and further starts offset it")
    draws: int = Field(10000, ge=2, description="posterior draws for the report")
    covariance: Literal["linear-response", "mean-field", "guide"] = Field(
        "linear-response", description="the covariance of the Gaussian the report's draws come from (normal guide): "
        "linear-response corrects the mean-field guide's sds by the curvature of the fixed-draw ELBO "
        "(docs/inference.md); mean-field keeps the guide's; guide draws from the guide itself, without PSIS")
    resample: bool = Field(True, description="resample the draws by their PSIS importance weights where k̂ "
                           "says the weights can be trusted (corrects skew and heavy tails)")
    discrete: bool = Field(False, description="report P(z = k) per element of enumerated latents")
    progress: bool = Field(False, description="show a progress bar on stderr (tqdm.auto: a widget in notebooks): "
                           "steps, ELBO, steps/s, and the share done and time left once the number of steps is known")
    jit: bool = Field(False, description="Adam only: compile each step's ELBO with Pyro's JitTrace_ELBO "
                      "(torch.jit); 2.2x faster per step at N = 10, 1.5x at 10^5, no gain at 10^6 (bench/RESULTS.md)")
    batch_size: int | None = Field(None, ge=1, description="minibatches of this many random rows of every data "
                                   "plate, their log-likelihood scaled up to keep the ELBO unbiased "
                                   "(minibatch.py) and corrected by a control variate (control_variates.py): "
                                   "one batch per round of L-BFGS, or per Adam step")
    distributed: bool = Field(False, description="one of several processes launched by torchrun, each holding a "
                              "slice of every data plate, gradients averaged (distributed.py)")
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?)$", description="where the data, the guide's "
                        "parameters and every draw live while fitting: cpu, cuda or cuda:N (pplc computes in "
                        "float64, which Apple's MPS lacks); the results come back to the CPU")



class NutsConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    warmup: int | None = Field(None, ge=1, description="warm-up (adaptation) iterations per chain; by default 200 "
                               "from the VI fit's warm start, 500 without one")
    samples: int = Field(1000, ge=2, description="draws kept per chain (with 500, two chains' largest R̂ passed "
                         "1.01 by chance on radon and eight schools in 3 of 6 runs; with 1,000, in none)")
    chains: int = Field(2, ge=1, description="independent chains, in parallel processes (one per core)")
    seed: int = Field(0, ge=0, lt=2**31, description="random seed; chain k starts from seed + k")
    target_accept: float = Field(0.8, gt=0, lt=1, description="the acceptance probability the step size is "
                                 "adapted to during warm-up; higher takes smaller steps (fewer divergences)")
    warm_start: bool = Field(True, description="start the chains from the VI fit's linear-response Gaussian and "
                             "sample in its geometry (a dense mass matrix), so that warm-up is short")
    progress: bool = Field(False, description="show progress bars on stderr: the warm start's VI fit, then every "
                           "chain's warm-up and draws, counted as they go")
