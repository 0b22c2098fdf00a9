import re
import subprocess
import sys

import pytest

from processing.config import ConfigError, load_config


def test_tier_sets_train_size_and_set_overrides_win():
    config = load_config("1k", overrides=["embed.batch_size=8", "train.classifiers=logreg"])
    assert config.corpus.train_size == 1000
    assert config.embed.batch_size == 8
    assert config.train.classifiers == ["logreg"]
    assert config.flat()["corpus.heldout_size"] == config.corpus.heldout_size


def test_config_file_overrides_tier(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("corpus:\n  heldout_size: 12\nembed:\n  device: cpu\n")
    config = load_config("50", path)
    assert (config.corpus.heldout_size, config.embed.device) == (12, "cpu")


@pytest.mark.parametrize(
    ("tier", "overrides", "named"),
    [
        ("7", [], "unknown tier '7'"),
        ("50", ["embed.batchsize=3"], "embed.batchsize"),
        ("50", ["nosuch.key=3"], "nosuch"),
        ("50", ["embed.batch_size=lots"], "embed.batch_size must be int"),
        ("50", ["embed.batch_size=0"], "embed.batch_size must be > 0"),
        ("50", ["embed.device=tpu"], "embed.device"),
        ("50", ["train.classifiers=logreg,forest"], "'forest'"),
        ("50", ["novalue"], "section.key=value"),
        ("50", ["extract.files_per_task=4"], "extract.min_files_per_task (8) must not exceed"),
    ],
)
def test_bad_config_names_the_key(tier, overrides, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_config(tier, overrides=overrides)


def test_cli_bad_input_is_one_line_and_nonzero(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "processing.run",
            "--tier",
            "50",
            "--workspace",
            str(tmp_path),
            "--set",
            "embed.batchsize=3",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "embed.batchsize" in result.stderr
    assert not (tmp_path / "features.duckdb").exists()
