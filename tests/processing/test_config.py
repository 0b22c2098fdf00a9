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


def test_numbers_in_exponent_notation_are_numbers(tmp_path):
    """YAML 1.1 (PyYAML) reads 1e-5 as a string; a user writing it means the number."""
    path = tmp_path / "mine.yaml"
    path.write_text("train:\n  sgd_alpha: 2e-5\n")
    config = load_config("50", path, overrides=["train.fit_memory_gb=1E-3", "train.logreg_c=3e2"])
    assert (config.train.sgd_alpha, config.train.fit_memory_gb, config.train.logreg_c) == (2e-5, 1e-3, 300.0)
    with pytest.raises(ConfigError, match=re.escape("train.sgd_alpha must be float; got '1e-5x'")):
        load_config("50", overrides=["train.sgd_alpha=1e-5x"])


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
        ("50", ["embed.batch_size=-1"], "embed.batch_size must be >= 0"),
        ("50", ["embed.token_budget=0"], "embed.token_budget must be > 0"),
        ("50", ["embed.device=tpu"], "embed.device"),
        ("50", ["train.classifiers=logreg,forest"], "'forest'"),
        ("50", ["novalue"], "section.key=value"),
        ("50", ["extract.files_per_task=4"], "extract.min_files_per_task (8) must not exceed"),
        # non-finite and out-of-range numbers stop at load time, before they can reach a worker
        ("50", ["extract.timeout_s=.inf"], "extract.timeout_s must be a finite number"),
        ("50", ["extract.timeout_s=.nan"], "extract.timeout_s must be a finite number"),
        ("50", ["train.logreg_c=.nan"], "train.logreg_c must be a finite number"),
        ("50", ["store.lock_wait_seconds=.inf"], "store.lock_wait_seconds must be a finite number"),
        ("50", ["train.promotion_margin=-5"], "train.promotion_margin must be in [-1, 1]"),
        ("50", ["extract.timeout_s=100000"], "extract.timeout_s must be at most"),
        ("50", ["ray.num_cpus=2"], "'ray' is now called 'engine'"),
        ("50", ["engine.executor=spark"], "engine.executor must be one of ray, local"),
        ("50", ["extract.backend=tika"], "extract.backend must be one of pypdf, pypdfium2"),
        ("50", ["embed.batch_size=[1"], "embed.batch_size: the value is not valid YAML"),
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


def test_every_default_lives_in_its_stage_dataclass():
    """configs/base.yaml sets nothing: the loaded defaults are the dataclasses' own."""
    from ingestion.extract import ExtractConfig
    from processing.embed import EmbedConfig
    from training.classifiers import TrainConfig

    config = load_config("50")
    assert config.extract == ExtractConfig() and config.embed == EmbedConfig() and config.train == TrainConfig()
    assert config.corpus.train_size == 50 and load_config("15k").corpus.train_size == 15000


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"root:*:20228:0:99999:7:::\n", "unknown config section (not a config key name)"),
        (b"\xff\xfe\x00garbage", "is not UTF-8 text"),
        (b"embed: [unclosed\n", "is not valid YAML (line"),
    ],
)
def test_config_file_errors_never_echo_its_contents(tmp_path, content, expected):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(expected)) as info:
        load_config("50", path)
    assert "20228" not in str(info.value) and "garbage" not in str(info.value)
    with pytest.raises(ConfigError, match="is a directory"):
        load_config("50", tmp_path)


def test_an_unreachable_tracking_server_is_one_line_before_any_work(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "processing.run", "--workspace", str(tmp_path), "--mlflow-uri", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "does not answer" in result.stderr and "http://127.0.0.1:9" in result.stderr
    assert not (tmp_path / "features.duckdb").exists() and not (tmp_path / "corpus").exists()


def test_the_printed_config_explains_every_key_and_reads_back(tmp_path, capsys):
    """`python -m processing.config` prints each key with the comment beside its default; --config reads
    the printed file back to the same config."""
    import dataclasses

    from processing.config import Config, field_notes, main

    assert main(["--tier", "1k", "--set", "train.cv_groups=^(.*)__"]) == 0
    printed = capsys.readouterr().out
    assert "  train_size: 1000  # generated training documents" in printed
    assert "  cv_groups: ^(.*)__\n" in printed  # a block comment sits above its key
    assert "  # Documents that are related" in printed
    config = Config()
    for section in dataclasses.fields(config):
        notes = field_notes(type(getattr(config, section.name)))
        for key in dataclasses.fields(getattr(config, section.name)):
            above, beside = notes[key.name]
            assert above or beside, f"{section.name}.{key.name} has no comment beside its default"
    saved = tmp_path / "resolved.yaml"
    saved.write_text(printed)
    assert load_config("50", saved) == load_config("1k", overrides=["train.cv_groups=^(.*)__"])
