"""Pipeline configuration: defaults in code, tiers in YAML, overrides on the command line.

Resolution order (later wins): dataclass defaults -> configs/base.yaml -> configs/tiers/<tier>.yaml
-> --config FILE -> each --set section.key=value. Any unknown key or badly typed value raises
ConfigError with a one-line message that names the key and says how to fix it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import math
import re
import tokenize
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from evaluation.drift import MonitorConfig
from ingestion.corpus import TIERS, CorpusConfig
from ingestion.extract import ExtractConfig
from processing.embed import EmbedConfig
from processing.features.store import StoreConfig
from processing.scheduling import EngineConfig
from training.classifiers import TrainConfig
from training.tracking import TrackingConfig

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
RENAMED_SECTIONS = {"ray": "engine"}  # old name -> new name, for a message that says what to change

__all__ = ["TIERS", "Config", "ConfigError", "load_config"]


class ConfigError(ValueError):
    """A config problem a user can fix; the message names the key."""


@dataclass
class Config:
    """One section per stage; each stage's dataclass owns its keys, defaults and checks."""

    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    mlflow: TrackingConfig = field(default_factory=TrackingConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """section.key -> value, the shape MLflow params want."""
        return {f"{s}.{k}": v for s, sec in self.to_dict().items() for k, v in sec.items()}


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
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: the value is not valid YAML{_where(exc)}; quote strings") from None
        _apply(config, {section: {name: value}}, source="--set")
    _validate(config)
    return config


def _read_yaml(path: Path) -> dict[str, Any]:
    """A mapping of sections from a YAML file; every problem is a one-line ConfigError that never quotes
    the file's contents (it may be a file the user did not mean to show)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory; pass a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text; pass a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML{_where(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (corpus:, embed:, ...)")
    return data


def _where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or ""
    return (f" (line {mark.line + 1}, column {mark.column + 1}: {problem})" if mark else "").replace("\n", " ")


def _apply(config: Config, data: dict[str, Any], source: str) -> None:
    sections = {f.name: f for f in dataclasses.fields(config)}
    for section_name, values in data.items():
        if section_name in RENAMED_SECTIONS:
            new = RENAMED_SECTIONS[section_name]
            raise ConfigError(f"{source}: config section {section_name!r} is now called {new!r}; rename it")
        if section_name not in sections:
            raise ConfigError(f"{source}: unknown config section {_name(section_name)}; known: {', '.join(sections)}")
        section = getattr(config, section_name)
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {section_name!r} must be a mapping of keys")
        hints = typing.get_type_hints(type(section))
        for key, value in values.items():
            if key not in hints:
                known = ", ".join(f"{section_name}.{k}" for k in hints)
                raise ConfigError(f"{source}: unknown config key {section_name}.{_name(key)}; known: {known}")
            setattr(section, key, _coerce(f"{section_name}.{key}", value, hints[key], source))


def _name(key: object) -> str:
    """A key as the message may show it: a short identifier is quoted, anything else (a line of a file
    that is no config at all, say) is not echoed."""
    text = str(key)
    return text if text.isidentifier() and len(text) <= 40 else "(not a config key name)"


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
    if hint is float and isinstance(value, str):
        # PyYAML reads YAML 1.1, where 1e-5 (no dot in it) is a string, not a number: read it as meant.
        with contextlib.suppress(ValueError):
            value = float(value)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):  # .inf / .nan pass YAML and every comparison below; stop them here
            raise ConfigError(f"{source}: {key} must be a finite number; got {value!r}")
        return float(value)
    if hint is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value) if value is not None else ""
    if hint is str and value is None:
        return ""
    if hint is str and isinstance(value, bool):  # YAML reads a bare on/off as a boolean
        return "on" if value else "off"
    raise ConfigError(f"{source}: {key} must be {hint.__name__}; got {value!r}")


def _validate(config: Config) -> None:
    """Each section checks its own keys (its stage knows what is valid); the message names the key."""
    for section in dataclasses.fields(config):
        try:
            getattr(config, section.name).validate()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


def field_notes(cls: type) -> dict[str, tuple[list[str], str]]:
    """key -> (the comment lines just above its default in the dataclass' source, the comment beside it):
    the one place each key is explained, so the printed config cannot drift from the code."""
    source = inspect.getsource(cls)
    comments: dict[int, tuple[str, bool]] = {}  # line -> (text, alone on its line)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            alone = not token.line[: token.start[1]].strip()
            comments[token.start[0]] = (token.string.lstrip("#").strip(), alone)
    notes: dict[str, tuple[list[str], str]] = {}
    for number, line in enumerate(source.splitlines(), start=1):
        if not (match := re.match(r"    (\w+): [^=]+=", line)):  # a field of the class body
            continue
        above, previous = [], number - 1
        while previous in comments and comments[previous][1]:
            above.insert(0, comments[previous][0])
            previous -= 1
        text, alone = comments.get(number, ("", True))
        notes[match.group(1)] = (above, "" if alone else text)
    return notes


def annotated_yaml(config: Config) -> str:
    """The config as YAML with what each key means, from the comments beside its default; --config reads
    it back."""
    lines: list[str] = []
    for section in dataclasses.fields(config):
        value = getattr(config, section.name)
        notes = field_notes(type(value))
        lines.append(f"{section.name}:")
        for key, item in dataclasses.asdict(value).items():
            above, beside = notes.get(key, ([], ""))
            lines += [f"  # {note}" for note in above]
            shown = yaml.safe_dump([item], default_flow_style=True, width=10_000).strip()[1:-1]  # one line
            lines.append(f"  {key}: {shown}" + (f"  # {beside}" if beside else ""))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the resolved config of a tier as YAML: every key, its value after all overrides, and what it
    means."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m processing.config", description=main.__doc__)
    parser.add_argument("--tier", default="50", choices=TIERS)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.tier, args.config, args.overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(annotated_yaml(config), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
