"""`data county: index[J][N]`: a category given as labels is coded 0..J-1 with J counted, and its labels name
the axes of length J in every output (table, HTML, JSON, draws CSV, InferenceData, summary)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from compiler import compile_source
from compiler.cli import main
from compiler.errors import DataError
from compiler.results import render
from compiler.results.report import Report

SPEC = """data N: int
data J: int
data county: index[J][N]
data y: real[N]
latent mu ~ Normal(0, 5)
latent a[J] ~ Normal(mu, 1)
observe y[i] ~ Normal(a[county[i]], 0.5)
"""
ROWS = "county,y\nSalem,0.5\nBoston,1.0\nAmherst,2.0\nBoston,1.5\n"
SORTED = ["Amherst", "Boston", "Salem"]


@pytest.fixture(scope="module")
def program():
    return compile_source(SPEC, "counties.ppl")


@pytest.fixture(scope="module")
def fit(program, tmp_path_factory):
    path = tmp_path_factory.mktemp("counties") / "counties.csv"
    path.write_text(ROWS)
    return program.fit(path, seed=0)


def refused(program, data) -> DataError:
    with pytest.raises(DataError) as caught:
        program.load_data(data)
    return caught.value


# Coding labels ---------------------------------------------------------------------------------------


def test_a_csv_column_of_names_is_coded_in_sorted_order_and_counts_j(program, tmp_path):
    path = tmp_path / "counties.csv"
    path.write_text(ROWS)
    data = program.load_data(path)
    assert data["county"].tolist() == [2, 1, 0, 1]
    assert data["J"] == 3
    assert [(labels.dim, labels.names) for labels in data.labels] == [("county", tuple(SORTED))]


def test_a_pandas_categorical_keeps_its_category_order_and_its_unused_categories(program):
    county = pd.Categorical(["Salem", "Boston", "Salem"], categories=["Salem", "Boston", "Worcester"])
    data = program.load_data(pd.DataFrame({"county": county, "y": [0.5, 1.0, 2.0]}))
    assert data["county"].tolist() == [0, 1, 0]
    assert data["J"] == 3
    assert data.labels[0].names == ("Salem", "Boston", "Worcester")


@pytest.mark.parametrize("given", ["list", "numpy", "series", "dataframe", "json", "parquet"])
def test_labels_code_alike_from_every_kind_of_data(program, tmp_path, given):
    names, y = ["Salem", "Boston", "Amherst"], [0.5, 1.0, 2.0]
    frame = pd.DataFrame({"county": names, "y": y})
    if given == "json":
        (tmp_path / "d.json").write_text(json.dumps({"county": names, "y": y}))
    elif given == "parquet":
        frame.to_parquet(tmp_path / "d.parquet")
    data = program.load_data({"list": {"county": names, "y": y}, "numpy": {"county": np.array(names), "y": y},
                              "series": {"county": frame["county"], "y": y}, "dataframe": frame,
                              "json": tmp_path / "d.json", "parquet": tmp_path / "d.parquet"}[given])
    assert data["county"].tolist() == [2, 1, 0]
    assert data.labels[0].names == tuple(SORTED)


def test_a_categorical_parquet_column_keeps_its_dictionary_order(program, tmp_path):
    county = pd.Categorical(["Salem", "Boston"], categories=["Salem", "Boston"])
    pd.DataFrame({"county": county, "y": [0.5, 1.0]}).to_parquet(tmp_path / "d.parquet")
    data = program.load_data(tmp_path / "d.parquet")
    assert data["county"].tolist() == [0, 1]
    assert data.labels[0].names == ("Salem", "Boston")


def test_integers_given_for_an_index_are_its_codes_and_carry_no_labels(program):
    data = program.load_data({"J": 3, "county": [2, 0, 2], "y": [0.5, 1.0, 2.0]})
    assert data["county"].tolist() == [2, 0, 2]
    assert data.labels == ()


def test_the_digest_that_pairs_a_saved_fit_with_its_data_tells_labels_apart(program):
    def digest(names):
        return program.load_data({"county": names, "y": [0.5, 1.0]}).digest

    assert digest(["Amherst", "Boston"]) != digest(["Amherst", "Salem"])  # the same codes, 0 and 1


def test_a_column_of_text_the_spec_does_not_declare_is_ignored_with_a_warning(program, tmp_path):
    path = tmp_path / "counties.csv"
    path.write_text("county,y,note\nSalem,0.5,wet\n")
    assert program.load_data(path).warnings == (f"{path}: ignoring 'note', not declared in the spec",)


# Refused ---------------------------------------------------------------------------------------------


def test_codes_and_labels_mixed_in_one_index_are_refused_at_the_element(program):
    error = refused(program, {"county": ["Salem", 2], "y": [0.5, 1.0]})
    assert str(error) == "county[1] is the number 2 among labels (in data)"
    assert error.span.line == 3 and "every row as a label" in error.hint


def test_j_smaller_than_the_number_of_labels_is_refused_at_j(program):
    error = refused(program, {"J": 2, "county": SORTED, "y": [0.5, 1.0, 2.0]})
    assert str(error) == "J = 2 is too small: 'county' has 3 labels (in data)"
    assert error.span.line == 2


def test_j_larger_than_the_number_of_labels_is_refused_with_the_categorical_way_to_give_unused_levels(program):
    error = refused(program, {"J": 4, "county": SORTED, "y": [0.5, 1.0, 2.0]})
    assert str(error) == "J = 4, but 'county' has only 3 labels (in data)"
    assert "pandas Categorical" in error.hint


def test_a_code_beyond_j_is_refused_with_the_codes_allowed(program):
    error = refused(program, {"J": 2, "county": [0, 2], "y": [0.5, 1.0]})
    assert str(error) == "county[1] = 2 is not a code of J = 2 levels (in data)"
    assert error.hint.startswith("codes count the levels from 0: 0..1")


def test_a_missing_label_is_refused_at_its_row(program):
    frame = pd.DataFrame({"county": ["Salem", None], "y": [0.5, 1.0]})
    assert str(refused(program, frame)) == "county[1] is missing (in data)"


def test_a_label_outside_the_categories_of_another_index_of_the_same_size_is_refused():
    program = compile_source(SPEC.replace("data y", "data home: index[J][N]\ndata y"))
    county = pd.Categorical(["Salem", "Boston"], categories=["Salem", "Boston"])
    error = refused(program, {"county": pd.Series(county), "home": ["Boston", "Lowell"], "y": [0.5, 1.0]})
    assert str(error) == "home[1] = 'Lowell' is not among the categories of 'county' (in data)"


def test_pplc_run_shows_a_label_error_at_the_declaration_and_exits_3(tmp_path, capsys):
    spec, data = tmp_path / "counties.ppl", tmp_path / "counties.json"
    spec.write_text(SPEC)
    data.write_text('{"J": 1, "county": ["Salem", "Boston"], "y": [0.5, 1.0]}')
    assert main(["run", str(spec), "--data", str(data)]) == 3
    assert capsys.readouterr().err == (
        f"{spec}:2:1: error: J = 1 is too small: 'county' has 2 labels (in {data})\n"
        "  2 | data J: int\n"
        "    | ^^^^^^^^^^^ leave J out to count the labels\n")


# Labels in the outputs -------------------------------------------------------------------------------


def test_labels_name_the_rows_of_the_table_and_of_the_html(fit):
    rows = [line.split()[0] for line in fit.table().splitlines()[2:5]]
    assert rows == ["mu"] + [f"a[{name}]" for name in SORTED[:2]]
    assert all(f"<td>a[{name}]</td>" in fit._repr_html_() for name in SORTED)


def test_the_json_report_carries_the_dims_and_coords_and_reads_back_to_the_same_table(fit):
    report = json.loads(fit.to_json())
    assert report["dims"] == {"a": ["county"]} and report["coords"] == {"county": SORTED}
    assert render.render_table(Report.model_validate_json(fit.to_json())) == fit.table()


def test_labels_head_the_columns_of_the_draws_csv_and_the_summary(fit, tmp_path):
    fit.write_draws(tmp_path / "draws.csv")
    assert (tmp_path / "draws.csv").read_text().splitlines()[0] == "draw,mu," + ",".join(f"a[{n}]" for n in SORTED)
    assert fit.summary().index.tolist() == ["mu"] + [f"a[{name}]" for name in SORTED]


def test_the_plot_titles_its_panels_by_the_labels(fit, tmp_path, monkeypatch):
    import matplotlib.figure

    titles, savefig = [], matplotlib.figure.Figure.savefig

    def saved(figure, *args, **kwargs):
        titles.extend(axes.get_title() for axes in figure.axes)
        return savefig(figure, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", saved)
    fit.write_plot(tmp_path / "fit.png")
    assert titles[:5] == ["ELBO", "mu"] + [f"a[{name}]" for name in SORTED]


def test_inference_data_has_a_dim_named_after_the_index_with_the_labels_as_coords(fit):
    posterior = fit.to_arviz().posterior
    assert posterior["a"].dims == ("chain", "draw", "county")
    assert posterior["a"].coords["county"].values.tolist() == SORTED
    assert float(posterior["a"].sel(county="Boston").mean()) == pytest.approx(fit.posterior["a"].mean[1])


def test_new_data_are_coded_by_the_labels_of_the_fit_not_by_their_own(fit, program):
    new = program.load_data({"county": ["Salem", "Boston"], "y": [0.0, 0.0]})
    assert new["county"].tolist() == [1, 0]  # their own sorted labels: Boston, Salem
    recoded = new.coded_as(fit.data.labels, program.ir)
    assert recoded["county"].tolist() == [2, 1] and recoded["J"] == 3


def test_predictions_for_a_few_of_the_fitted_labels_follow_their_levels(fit):
    draws = fit.predict(2000, data={"county": ["Amherst", "Salem"], "y": [0.0, 0.0]})["y"]
    means = fit.posterior["a"].mean
    assert draws.mean(0).tolist() == pytest.approx([means[0], means[2]], abs=0.1)


def test_a_label_the_fit_never_saw_is_refused_in_predictions(fit):
    with pytest.raises(DataError) as caught:
        fit.predict(10, data={"county": ["Lowell"], "y": [0.0]})
    assert str(caught.value) == "'county' has the label 'Lowell', not among the 3 labels the fit knows"
    assert caught.value.hint == "the fit has no level for it; its labels are 'Amherst', 'Boston', 'Salem'"


PER_COUNTY = """data J: int
data N: int
data county: index[J][N]
data y: real[J]
latent a[J] ~ Normal(0, 1)
observe y[j] ~ Normal(a[j], 1)
"""


@pytest.fixture(scope="module")
def per_county():
    return compile_source(PER_COUNTY).fit({"county": ["b", "a", "c"], "y": [0.1, 0.2, 0.3]}, seed=0)


def test_an_observation_over_j_has_the_labelled_dim_in_every_group_of_inference_data(per_county):
    idata = per_county.to_arviz(predictive=10)
    for group in ("observed_data", "log_likelihood", "posterior_predictive"):
        assert idata[group]["y"].coords["county"].values.tolist() == ["a", "b", "c"], group


def test_predictions_written_as_inference_data_carry_the_labels_and_the_new_rows_coded_as_the_fit(per_county, tmp_path):
    import arviz

    county = pd.Categorical(["c", "a", "b"], categories=["c", "a", "b"])  # coded [0, 1, 2] by their own labels
    new = per_county.program.load_data({"county": pd.Series(county)}, simulate_missing=True)
    per_county.write_predictive(per_county.predict(10, data=new), tmp_path / "p.nc", new)
    idata = arviz.from_netcdf(tmp_path / "p.nc")
    assert idata.predictions["y"].coords["county"].values.tolist() == ["a", "b", "c"]
    assert idata.predictions_constant_data["county"].values.tolist() == [2, 0, 1]


def test_new_data_with_fewer_levels_are_refused_where_an_array_has_an_axis_of_length_j(per_county):
    with pytest.raises(DataError) as caught:
        per_county.predict(10, data={"county": ["c", "a"]})
    assert str(caught.value) == "'y' has an axis of length J, which is 2 here (the labels of 'county') and 3 in the fit"


def test_a_nuts_fit_names_its_rows_and_its_inference_data_by_the_labels(program):
    fit = program.sample({"county": ["Salem", "Boston", "Amherst"], "y": [0.5, 1.0, 2.0]}, warmup=20, samples=20,
                         chains=1, warm_start=False)
    assert [row.split()[0] for row in fit.table().splitlines()[3:6]] == [f"a[{name}]" for name in SORTED]
    assert fit.to_arviz().posterior["a"].coords["county"].values.tolist() == SORTED


def test_new_labels_are_refused_where_transformed_data_were_computed_from_their_own_codes():
    program = compile_source(SPEC.replace("latent mu", "let doubled[i] = 2 * county[i]\nlatent mu"))
    fitted = program.load_data({"county": SORTED, "y": [0.5, 1.0, 2.0]}).labels
    new = program.load_data({"county": ["Salem"], "y": [0.5]})
    with pytest.raises(DataError) as caught:
        new.coded_as(fitted, program.ir)
    assert str(caught.value) == "'doubled' is computed from 'county', which new data given as labels recode"
