"""`--plot` / `Fit.write_plot` draws every latent's marginal, 12 panels a page: a PNG per page
(`fit.png`, `fit-2.png`, ...) or every page in one PDF, and names each file it wrote."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from compiler import compile_source
from compiler.cli import main
from compiler.results.export import PANELS_PER_PAGE, columns

MANY = "latent z[30] ~ Normal(0, 1)\n"  # 30 marginals and the ELBO: 31 panels, 3 pages
FEW = "latent z[3] ~ Normal(0, 1)\n"


@pytest.fixture(scope="module")
def many():
    return compile_source(MANY, "many.ppl").fit(steps=20, draws=200)


@pytest.fixture(scope="module")
def pages(many, tmp_path_factory):
    """The PNG pages of `many`'s plot, drawn once for the tests that read them."""
    folder = tmp_path_factory.mktemp("pages")
    return folder, many.write_plot(folder / "fit.png")


def test_every_marginal_is_drawn_on_as_many_pngs_as_it_takes(many, pages):
    folder, written = pages
    assert len(columns(many.draws)) + 1 == 31 and PANELS_PER_PAGE == 12
    assert written == [folder / "fit.png", folder / "fit-2.png", folder / "fit-3.png"]
    assert sorted(path.name for path in folder.iterdir()) == ["fit-2.png", "fit-3.png", "fit.png"]
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG"


def test_the_last_page_holds_only_what_is_left(pages):
    first, _, last = pages[1]
    with Image.open(first) as full, Image.open(last) as rest:  # 12 panels are 3 rows; the last 7 are 2
        assert rest.size[1] < full.size[1]


def test_a_pdf_holds_every_page_in_one_file(many, tmp_path):
    assert many.write_plot(tmp_path / "fit.pdf") == [tmp_path / "fit.pdf"]
    pages = re.findall(rb"/Type\s*/Page[^s]", (tmp_path / "fit.pdf").read_bytes())
    assert len(pages) == 3 and [path.name for path in tmp_path.iterdir()] == ["fit.pdf"]


def test_a_small_model_fits_on_one_page(tmp_path):
    fit = compile_source(FEW, "few.ppl").fit(steps=20, draws=200)
    assert fit.write_plot(tmp_path / "fit.png") == [tmp_path / "fit.png"]


def test_pplc_names_every_page_it_wrote(tmp_path, capsys):
    spec = tmp_path / "many.ppl"
    spec.write_text(MANY)
    plot = tmp_path / "plot.png"
    assert main(["run", str(spec), "--steps", "20", "--num-draws", "200", "--quiet", "--plot", str(plot)]) == 0
    assert capsys.readouterr().err.splitlines() == [f"wrote {plot}, {tmp_path / 'plot-2.png'}, {tmp_path / 'plot-3.png'}"]
