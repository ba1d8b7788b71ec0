"""CLI user errors: exit code 2, one line naming the problem, no traceback, nothing written."""

import pytest
from typer.testing import CliRunner

from obliviate.cli import app


@pytest.mark.parametrize("args, message", [
    (["--set", "methods=[gradient_acent]"], "unknown method 'gradient_acent'; did you mean 'gradient_ascent'?"),
    (["--config", "no_such_file.yaml"], "config file 'no_such_file.yaml' not found"),
    (["--set", "trainlr"], "malformed --set 'trainlr': expected key=value"),
    (["--set", "data.forget_fraction=1.5"], "forget_fraction must be in (0, 1), got 1.5"),
    (["--set", "data.forget_fraction=0"], "forget_fraction must be in (0, 1), got 0"),
    (["--set", "train.lrr=0.1"], "unknown config key 'train.lrr'; did you mean 'train.lr'?"),
])
def test_run_user_errors(tmp_path, args, message):
    result = CliRunner().invoke(app, ["run", "--config", "micro", "--set", f"output_dir={tmp_path / 'runs'}",
                                      *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_eval_rejects_a_directory_without_a_model(tmp_path):
    result = CliRunner().invoke(app, ["eval", "--config", "micro", "--model", str(tmp_path),
                                      "--set", f"output_dir={tmp_path / 'runs'}"])
    assert result.exit_code == 2 and "not a Hugging Face model directory" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_every_command_has_an_example_in_help():
    for name in ("run", "data", "train", "unlearn", "eval"):
        result = CliRunner().invoke(app, [name, "--help"])
        assert result.exit_code == 0 and "Example: obliviate" in result.output
