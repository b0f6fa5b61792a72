"""The command line: output, exit codes, and no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from compiler.cli import main

# A fixed number of L-BFGS iterations, about as many as these specs take to converge, and fewer draws.
FAST = ["--steps", "20", "--num-draws", "2000"]


def test_run_prints_a_table_with_the_posterior_and_elbo(specs, capsys):
    assert main(["run", str(specs / "coin.ppl"), *FAST]) == 0
    out = capsys.readouterr().out
    assert "mean" in out and "5%" in out and "95%" in out
    assert any(line.startswith("f ") for line in out.splitlines())
    assert "ELBO" in out


def test_run_json_prints_one_object_with_the_report_keys(specs, capsys):
    assert main(["run", str(specs / "coin.ppl"), "--data", str(specs / "coin.data.json"), "--json", *FAST]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"spec", "guide", "elbo", "steps", "converged", "posterior", "params"} <= set(report)
    assert set(report["posterior"]["f"]) == {"mean", "sd", "hdi_3", "hdi_97", "q05", "q50", "q95"}
    assert report["steps"] == 20


def test_same_seed_gives_the_same_numbers(specs, capsys):
    outputs = []
    for _ in range(2):
        main(["run", str(specs / "coin.ppl"), "--json", "--seed", "3", *FAST])
        outputs.append(json.loads(capsys.readouterr().out)["posterior"])
    assert outputs[0] == outputs[1]


def test_different_seeds_give_different_draws(specs, capsys):
    means = []
    for seed in ("1", "2"):
        main(["run", str(specs / "coin.ppl"), "--json", "--seed", seed, *FAST])
        means.append(json.loads(capsys.readouterr().out)["posterior"]["f"]["mean"])
    assert means[0] != means[1]


def test_array_latents_are_nested_lists_in_json(specs, capsys):
    main(["run", str(specs / "linear_regression.ppl"), "--json", *FAST])
    beta = json.loads(capsys.readouterr().out)["posterior"]["beta"]
    assert isinstance(beta["mean"], list) and len(beta["mean"]) == 3


def test_check_prints_a_one_line_summary(specs, capsys):
    assert main(["check", str(specs / "coin.ppl")]) == 0
    out = capsys.readouterr().out.strip()
    assert "\n" not in out
    assert "data: N, x" in out and "latent: f" in out and "observed: x" in out


def test_emit_prints_the_model_and_guide(specs, capsys):
    assert main(["emit", str(specs / "coin.ppl")]) == 0
    out = capsys.readouterr().out
    assert "def model(data):" in out and "def guide(data):" in out


def test_spec_error_exits_2_with_the_located_message(tmp_path, capsys):
    spec = tmp_path / "bad.ppl"
    spec.write_text("data N: int\ndata x: int[N]\nlatent f ~ Beta(10, 10)\nobserve x[i] ~ Bernoulli(g)\n")
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"{spec}:4:26: error: unknown name 'g'" in err
    assert "  4 | observe x[i] ~ Bernoulli(g)" in err
    assert "^ did you mean 'f'?" in err


def test_data_error_exits_3(tmp_path, specs, capsys):
    data = tmp_path / "bad.json"
    data.write_text('{"x": [1, 2]}')
    assert main(["run", str(specs / "coin.ppl"), "--data", str(data)]) == 3
    assert "x[1] = 2 is above upper=1" in capsys.readouterr().err


def test_missing_spec_file_is_a_clean_error(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.ppl")]) == 2
    assert "cannot read spec" in capsys.readouterr().err


def test_errors_print_no_traceback_in_a_real_process(tmp_path):
    spec = tmp_path / "bad.ppl"
    spec.write_text("latent f ~ Beta(10,\n")
    result = subprocess.run([sys.executable, "-m", "compiler", "check", str(spec)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error: syntax error" in result.stderr


def test_run_never_imports_torch_dynamo(specs):
    # torch.optim would import it (0.8 s) only to exclude its methods from compilation.
    code = ("import sys\nfrom compiler.cli import main\n"
            f"code = main(['run', {str(specs / 'coin.ppl')!r}])\nprint(code, 'torch._dynamo' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1] == "0 False"


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA device")
def test_a_device_that_is_not_there_is_a_clear_error(specs, capsys):
    assert main(["run", str(specs / "coin.ppl"), "--device", "cuda"]) == 2
    assert "--device cuda: no such device here" in capsys.readouterr().err


def test_an_unknown_device_is_a_usage_error(specs, capsys):
    with pytest.raises(SystemExit):
        main(["run", str(specs / "coin.ppl"), "--device", "gpu"])
    assert "'gpu' is not cpu, cuda or cuda:N" in capsys.readouterr().err
