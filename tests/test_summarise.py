"""The engine's records -> a `Report`: each site's summary, and the warnings a fit must carry."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from compiler.inference.config import NutsConfig, RunConfig
from compiler.inference.nuts import NutsResult, SampleStats
from compiler.inference.records import Importance, Note
from compiler.results.notes import sentence
from compiler.results.report import FAR_SHIFT, MATERIAL_SHIFT, UNIFORM_WEIGHTS_SD
from compiler.results.summarise import nuts_report, summarise, vi_report

PROGRAM = SimpleNamespace(source=SimpleNamespace(name="s.ppl"), code=SimpleNamespace(guide_families={"m": "Normal"}))
DATA = SimpleNamespace(warnings=("a data warning",), labels=())
DRAWS = {"m": torch.linspace(-1, 1, 2001, dtype=torch.float64)}


def _vi_result(**fields) -> SimpleNamespace:
    defaults = dict(optimizer="lbfgs", elbo_trace=(-3.0,), elbo=-3.0, steps=10, converged=True, draws=DRAWS,
                    params={}, discrete={}, guide_state={}, seconds=0.1, interrupted=False, notes=(),
                    importance=Importance(0.3, 1.0, 0.7, None, 4000),
                    covariance=None, resampled=False, gaussian=None)
    return SimpleNamespace(**{**defaults, **fields})


def _nuts_result(divergent: tuple[int, int] = (0, 0), rhat: float = 1.0) -> NutsResult:
    """Two chains of 1,000 draws of `m`, `divergent[k]` of chain k's transitions divergent."""
    diverging = torch.zeros(2, 1000, dtype=torch.bool)
    for chain, count in enumerate(divergent):
        diverging[chain, :count] = True
    steps = torch.full((2, 1000), 3)
    stats = SampleStats(diverging, steps, torch.full((2, 1000), 2), torch.full((2, 1000), 0.5))
    return NutsResult({"m": DRAWS["m"][:2000].reshape(2, 1000)}, {"m": torch.tensor(rhat)},
                      {"m": torch.tensor(900.0)}, stats)


def test_a_summary_holds_the_mean_sd_and_quantiles_of_the_draws():
    draws = DRAWS["m"]
    summary = summarise(draws)
    assert summary.mean == pytest.approx(0.0, abs=1e-12)
    assert summary.sd == pytest.approx(draws.std().item())
    assert (summary.q05, summary.q50, summary.q95) == pytest.approx((-0.9, 0.0, 0.9))
    assert summary.hdi_97 - summary.hdi_3 == pytest.approx(2 * 0.94, abs=2e-3)  # uniform: any 94 % window


def test_an_array_sites_summary_is_shaped_like_the_site():
    summary = summarise(torch.randn(100, 2, 3))
    assert len(summary.mean) == 2 and len(summary.mean[0]) == 3
    assert summary.rhat is None and summary.ess is None


def test_a_vi_report_carries_the_datas_and_the_fits_notes_first():
    note = Note("distributed", {"processes": 2})
    report = vi_report(PROGRAM, _vi_result(notes=(note,)), RunConfig(), DATA)
    assert report.warnings == ["a data warning", sentence(note)]
    assert (report.spec, report.guide, report.khat, report.log_ratio_sd) == ("s.ppl", {"m": "Normal"}, 0.3, 1.0)


def test_a_vi_fit_that_did_not_converge_says_so():
    report = vi_report(PROGRAM, _vi_result(converged=False), RunConfig(), DATA)
    assert not report.converged
    assert "the ELBO was still changing after 10 steps" in report.warnings[-1]


def test_an_interrupted_fit_says_where_it_stopped():
    report = vi_report(PROGRAM, _vi_result(converged=False, interrupted=True), RunConfig(), DATA)
    assert report.interrupted
    assert report.warnings[-1] == "interrupted at step 10: this is the posterior reached so far"


def _warnings(importance: Importance, covariance: str | None = None) -> list[str]:
    result = _vi_result(importance=importance, covariance=covariance)
    return [w for w in vi_report(PROGRAM, result, RunConfig(), DATA).warnings if "k̂" in w]


def _warned(importance: Importance) -> bool:
    return bool(_warnings(importance))


def test_a_heavy_tailed_khat_warns():
    assert _warned(Importance(0.8, 1.0, 0.7, None, 4000))


def test_a_khat_below_its_threshold_does_not_warn():
    assert not _warned(Importance(0.65, 1.0, 0.7, None, 4000))


def test_weights_that_barely_vary_do_not_warn_whatever_khat():
    assert not _warned(Importance(3.0, UNIFORM_WEIGHTS_SD / 2, 0.7, None, 4000))


def test_weights_whose_reweighting_would_barely_move_the_answer_do_not_warn():
    assert not _warned(Importance(0.9, 1.0, 0.7, MATERIAL_SHIFT / 2, 4000))
    assert _warned(Importance(0.9, 1.0, 0.7, MATERIAL_SHIFT * 2, 4000))


def test_a_far_reweighting_warns_although_khat_is_below_its_threshold():
    # gp_pois_regr at defaults: k̂ 0.56 from 4,000 draws, reweighting would move alpha 0.71 sds.
    assert _warned(Importance(0.56, 1.0, 0.7, FAR_SHIFT * 1.2, 4000))


def test_a_reweighting_short_of_far_does_not_warn_while_khat_is_below_its_threshold():
    # eight schools' mean-field Gaussian: k̂ 0.62, reweighting would move a mean 0.27 sds, and its answer is right.
    assert not _warned(Importance(0.56, 1.0, 0.7, FAR_SHIFT * 0.8, 4000))


def test_a_far_reweighting_of_weights_that_barely_vary_does_not_warn():
    assert not _warned(Importance(0.3, UNIFORM_WEIGHTS_SD / 2, 0.7, FAR_SHIFT * 2, 4000))


def test_a_far_reweighting_warns_from_few_draws_too():
    # Large-data fits price k̂'s draws by the fit's cost: from 200 draws k̂ reads lower still.
    assert _warned(Importance(0.2, 1.0, 0.57, FAR_SHIFT * 1.2, 200))


def test_the_far_reweighting_warning_says_how_far_and_what_to_do():
    [warning] = _warnings(Importance(0.56, 234.0, 0.7, 0.71, 4000), covariance="linear-response")
    assert warning.startswith("reweighting by the importance weights p(x, z)/q(z) would move a mean or sd by 0.71 "
                              "sds although Pareto k̂ = 0.56 ≤ 0.70 (4000 draws): the posterior lies partly where "
                              "the linear-response Gaussian barely reaches")
    assert warning.endswith("check with --method nuts or `pplc vi-vs-nuts`, or refit with --guide fullrank")


def test_a_full_rank_gaussian_is_not_told_to_refit_with_a_full_rank_guide():
    [warning] = _warnings(Importance(0.56, 1.0, 0.7, FAR_SHIFT * 2, 4000), covariance="full-rank")
    assert "--method nuts" in warning and "--guide fullrank" not in warning


def test_a_nuts_report_has_r_hat_and_ess_and_warns_of_divergences():
    report = nuts_report(PROGRAM, _nuts_result(divergent=(1, 2)), NutsConfig(), DATA)
    assert (report.method, report.chains, report.steps, report.divergences) == ("nuts", 2, 1000, 3)
    assert (report.posterior["m"].rhat, report.posterior["m"].ess) == (1.0, 900.0)
    assert report.warnings[-1].startswith("3 divergent transitions (chain 0: 1, chain 1: 2)")


def test_chains_that_disagree_are_a_warning():
    report = nuts_report(PROGRAM, _nuts_result(rhat=1.05), NutsConfig(), DATA)
    assert any(w.startswith("R̂ ≥ 1.01 for m:") for w in report.warnings)
