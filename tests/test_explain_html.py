"""`pplc explain SPEC --html FILE`: one self-contained page that shows the joint. The page's
text is checked here without a browser; then the page is opened in headless Chromium (Debian's
`chromium`, driven by Playwright, both installed by .ci/run), and those tests skip, saying why,
where either is missing."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from compiler import compile_file, compile_source
from compiler.cli import main
from compiler.results import charts, explain_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _values(page: str) -> dict[str, float]:
    """The traced numbers of a page, by name, as the page holds them exactly (`data-value`)."""
    return {name: float(value) for name, value in re.findall(r'data-name="([^"]+)" data-value="([^"]+)"', page)}


def _lines(page: str, pane: str) -> list[tuple[str, str]]:
    """(site, text) of each line of a pane of the code section ("" for a line that makes no site)."""
    body = re.search(f'<div class="pane" id="pane-{pane}">(.*?)</div>', page).group(1)
    return re.findall(r'<span class="line" id="[^"]*"(?: data-site="([^"]*)")?><span class="number">\d+</span>'
                      r'([^<]*)</span>', body)


def _trace_json(capsys, *arguments: str) -> dict:
    assert main(["explain", *arguments, "--trace", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def coin_page(coin, fitted_coin) -> str:
    return explain_html.page(coin, fitted_coin.data, fitted_coin, seed=0)


@pytest.fixture(scope="module")
def eight_schools_page(specs, tmp_path_factory):
    path = tmp_path_factory.mktemp("page") / "eight_schools.html"
    assert main(["explain", str(specs / "eight_schools.ppl"), "--html", str(path), "--seed", "1"]) == 0
    return path


def test_every_site_is_anchored_in_the_spec_the_model_and_the_guide(coin_page):
    for anchor in ("spec-f", "model-f", "guide-f", "spec-x", "model-x", "trace-model-f", "trace-model-x",
                   "trace-guide-f", "marginal-f"):
        assert f'id="{anchor}"' in coin_page


def test_each_statement_is_linked_to_the_lines_that_make_its_site(coin_page):
    assert ("f", "latent f ~ Beta(10, 10)") in _lines(coin_page, "spec")
    assert ("", "data N: int") in _lines(coin_page, "spec")
    model = _lines(coin_page, "model")
    assert ("f", '    f = pyro.sample(&quot;f&quot;, dist.Beta(10, 10))') in model
    assert ("x", '        pyro.sample(&quot;x&quot;, dist.Bernoulli(probs=f), obs=x)') in model
    assert {site for site, _ in model} == {"", "f", "x"}


def test_a_guide_parameter_line_belongs_to_its_latent(coin_page):
    guide = dict((text.strip().split(" = ")[0], site) for site, text in _lines(coin_page, "guide") if " = " in text)
    assert guide["f_loc"] == "f" and guide["f_scale"] == "f"


def test_a_joint_gaussian_s_parameters_belong_to_the_site_that_draws_every_latent(specs):
    program = compile_file(specs / "eight_schools.ppl", guide="fullrank")
    guide = _lines(explain_html.page(program, program.load_data(), fit=None), "guide")
    shared = {site for site, text in guide if "joint_loc = " in text or "joint_scale_tril = " in text}
    assert shared == {program.code.joint_site}
    assert ("mu", '    pyro.sample(&quot;mu&quot;, dist.Delta(mu_unconstrained))') in guide


def test_no_two_elements_share_an_id_whatever_the_sites_are_called():
    program = compile_source("latent L1 ~ Normal(0, 1)\nlatent line ~ Normal(L1, 1)\nlatent line_2 ~ Normal(line, 1)\n")
    ids = re.findall(r' id="([^"]*)"', explain_html.page(program, program.load_data({}), fit=None))
    assert len(ids) == len(set(ids)) and {"spec-L1", "spec-line", "spec-line_2"} <= set(ids)
    assert any(re.fullmatch(r"model-line-\d+", i) for i in ids)  # lines that make no site are numbered


def test_the_page_shows_the_factorisation_that_explain_writes(coin, coin_page):
    explanation = coin.explain()
    for formula in [t.formula for t in explanation.terms + explanation.guide] + [explanation.elbo]:
        assert formula in coin_page


def test_the_page_holds_the_numbers_of_explain_trace(specs, tmp_path, capsys):
    spec = str(specs / "coin.ppl")
    assert main(["explain", spec, "--html", str(tmp_path / "coin.html"), "--seed", "3"]) == 0
    shown = _values((tmp_path / "coin.html").read_text(encoding="utf-8"))
    traced = _trace_json(capsys, spec, "--seed", "3")
    assert shown == _expected(traced)


def test_with_fitted_the_page_draws_from_the_fit_as_trace_fitted_does(coin, fitted_coin):
    page = explain_html.page(coin, fitted_coin.data, fitted_coin, seed=0, fitted=True)
    assert "with z drawn from the fitted guide" in page
    assert _values(page) == _expected(coin.trace(fitted=True, seed=0).model_dump())


def _expected(traced: dict) -> dict[str, float]:
    """A trace's numbers under the names the page gives them."""
    sites = {f"{side}-{row['site']}": row["log_prob_sum"] for side in ("model", "guide") for row in traced[f"{side}_sites"]}
    return {**sites, "log_joint": traced["log_joint"], "log_guide": traced["log_guide"], "elbo": traced["elbo"]}


def test_a_saved_fit_is_drawn_instead_of_fitting_again(coin, fitted_coin_with_adam, tmp_path):
    from compiler import load_fit
    from compiler.results import explain

    fitted_coin_with_adam.save(tmp_path / "coin.fit")  # Adam's: a fit made here (L-BFGS) would differ
    arguments = [str(coin.source.name), "--html", str(tmp_path / "coin.html"), "--fit", str(tmp_path / "coin.fit")]
    assert main(["explain", *arguments, "--fitted"]) == 0
    page = (tmp_path / "coin.html").read_text(encoding="utf-8")
    saved = load_fit(tmp_path / "coin.fit")
    assert _values(page) == _expected(explain.trace(coin, saved.data, saved.guide_state, 0).model_dump())
    assert "After the fit (VI, adam, seed 0)" in page
    assert 'id="marginal-f"' in page and 'class="series"' not in page  # a saved fit keeps no ELBO trace


def test_a_fit_of_another_spec_is_refused(regression, fitted_coin, tmp_path):
    from compiler import DataError

    with pytest.raises(DataError, match=r"the fit is of \S*coin\.ppl, not of <string>"):
        regression.explain_html(tmp_path / "page.html", fit=fitted_coin)
    assert not (tmp_path / "page.html").exists()


def test_fit_without_html_is_refused(coin, tmp_path, capsys):
    assert main(["explain", str(coin.source.name), "--trace", "--fit", str(tmp_path / "coin.fit")]) == 2
    assert "--fit gives --html the fit to draw" in capsys.readouterr().err


def test_the_page_loads_nothing_from_anywhere(coin_page):
    assert re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', coin_page) == ["data:,"]  # the empty icon only
    assert "http" not in coin_page and "url(" not in coin_page and "@import" not in coin_page


def test_a_hostile_file_name_and_comment_are_shown_as_text_never_as_markup():
    hostile = "<img src=x onerror=alert(1)>"
    program = compile_source(f"# </code></pre><script>alert(2)</script> {hostile}\n"
                             "data N: int\ndata x: real[N]\nlatent m ~ Normal(0, 1)\nobserve x[i] ~ Normal(m, 1)\n",
                             name=f"{hostile}.ppl")
    page = explain_html.page(program, program.load_data({"N": 2, "x": [0.5, -0.5]}), fit=None)
    assert "<script>alert" not in page and "<img" not in page
    assert "&lt;/code&gt;&lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;.ppl" in page
    assert page.count("<script>") == 1  # the page's own


def test_scalar_latents_get_a_prior_and_posterior_chart_and_the_others_are_named(eight_schools_page):
    page = eight_schools_page.read_text(encoding="utf-8")
    assert 'id="marginal-mu"' in page and 'id="marginal-tau"' in page and 'id="marginal-theta_raw"' not in page
    assert "Latents with more than one element (theta_raw)" in page
    assert page.count('class="prior"') == 2 and page.count('class="posterior"') == 2


def test_the_prior_draws_follow_the_prior(coin):
    draws = explain_html._prior_draws(coin, coin.load_data(), ["f"], seed=0)["f"]
    mean, sd = 0.5, (0.25 / 21) ** 0.5  # Beta(10, 10)
    assert draws.shape == (explain_html.PRIOR_DRAWS,)
    assert abs(draws.mean().item() - mean) < 4 * sd / explain_html.PRIOR_DRAWS ** 0.5
    assert draws.std().item() == pytest.approx(sd, rel=0.1)


def test_an_improper_prior_leaves_the_posterior_drawn_alone():
    program = compile_source("data N: int\ndata y: real[N]\nlatent a ~ Flat()\nlatent s ~ HalfNormal(1)\n"
                             "observe y[i] ~ Normal(a, s)\n")
    fit = program.fit({"N": 3, "y": [0.1, 0.2, 0.5]}, seed=0, progress=False)
    page = explain_html.page(program, fit.data, fit)
    assert "The prior of a is improper" in page
    assert page.count('class="posterior"') == 2 and 'class="prior"' not in page


def test_a_spec_without_latents_gets_its_trace_and_its_page():
    program = compile_source("data N: int\ndata y: real[N]\nobserve y[i] ~ Normal(0, 1)\n")
    data = program.load_data({"N": 2, "y": [0.1, 0.2]})
    traced = program.trace(data)
    assert traced.log_guide == 0.0 and traced.guide_sites == []
    assert _values(explain_html.page(program, data, fit=None))["log_joint"] == traced.log_joint


def test_the_elbo_trace_is_drawn_through_every_step(coin_page, fitted_coin):
    line = re.search(r'<polyline class="series" points="([^"]*)"', coin_page).group(1)
    assert len(line.split()) == len(fitted_coin.elbo_trace)


def test_a_latent_drawn_at_one_value_still_gets_a_finite_chart():
    chart = charts.densities(np.full(50, 2.0), np.full(50, 2.0), "c")
    assert "nan" not in chart and "inf" not in chart


def test_an_html_file_in_a_missing_folder_is_refused_before_anything_is_fitted(specs, tmp_path, capsys):
    assert main(["explain", str(specs / "coin.ppl"), "--html", str(tmp_path / "none" / "coin.html")]) == 2
    assert "there is no folder" in capsys.readouterr().err


# In a real browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install "
                                         "'.[test]')")
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@pytest.fixture
def opened(browser, eight_schools_page):
    """The page in a fresh tab, with what the browser reported while loading it."""
    tab = browser.new_page()
    reports = []
    tab.on("console", lambda message: reports.append(f"console {message.type}: {message.text}"))
    tab.on("pageerror", lambda error: reports.append(f"error: {error}"))
    tab.on("requestfailed", lambda request: reports.append(f"failed: {request.url}"))
    tab.on("request", lambda request: reports.append(f"request: {request.url}")
           if request.url != eight_schools_page.as_uri() else None)
    tab.goto(eight_schools_page.as_uri())
    yield tab, reports
    tab.close()


def test_the_page_loads_without_console_messages_errors_or_requests(opened):
    tab, reports = opened
    tab.wait_for_load_state("load")
    assert reports == []


def test_every_site_of_the_spec_appears_in_the_browser(opened, specs):
    tab, _ = opened
    for site in ("mu", "tau", "theta_raw", "theta", "y"):
        assert tab.locator(f"#spec-{site}").is_visible() and tab.locator(f"#model-{site}").is_visible()
        assert tab.locator(f"#trace-model-{site}").is_visible()
    for latent in ("mu", "tau", "theta_raw"):
        assert tab.locator(f"#guide-{latent}").is_visible()
    for scalar in ("mu", "tau"):
        assert tab.locator(f"#marginal-{scalar} svg polyline.posterior").count() == 1


def test_the_browser_shows_the_numbers_explain_trace_prints(opened, specs, capsys):
    tab, _ = opened
    assert main(["explain", str(specs / "eight_schools.ppl"), "--trace", "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    for name, label in (("log_joint", "log p(x, z) = "), ("log_guide", "log q(z)    = "), ("elbo", "log q(z) = ")):
        shown = tab.locator(f'[data-name="{name}"]').inner_text()
        assert f"{label}{shown}" in printed


def test_clicking_a_statement_lights_its_sites_in_the_model_the_guide_and_the_trace(opened):
    tab, _ = opened
    tab.click("#spec-tau")
    lit = tab.locator(".selected")
    assert {lit.nth(i).get_attribute("data-site") for i in range(lit.count())} == {"tau"}
    for element in ("#model-tau", "#guide-tau", "#trace-model-tau", "#trace-guide-tau", "#marginal-tau"):
        assert "selected" in tab.locator(element).get_attribute("class")
    assert "selected" not in (tab.locator("#model-mu").get_attribute("class") or "")
