"""The rules file of agent-tasks: where it is, what it may say, and reading it once at start.

A malformed file stops the consumer before it takes a message (one line says what is wrong),
rather than failing every message it would have handled.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.errors import ConfigError

DEFAULT_RULES = Path(__file__).with_name("default_rules.yaml")
VAULT_RULES = Path(".weavenn") / "rules.yaml"
NO_AUTO_TAG = "no-auto-tag"
_TAG = re.compile(r"[\w/\-]+")


def _tag_list(value: Any) -> Any:
    """A tag or a list of tags, as a list without leading '#'."""
    items = value if isinstance(value, list) else [value]
    tags = []
    for item in items:
        if not isinstance(item, str) or not _TAG.fullmatch(item.strip().lstrip("#")):
            raise ValueError(f"{item!r} is not a tag (letters, digits, _, -, / and no spaces)")
        tags.append(item.strip().lstrip("#"))
    return tags


class LinkRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_length: int = Field(default=3, ge=1)


class Rules(BaseModel):
    """What the rules file says (see default_rules.yaml)."""

    model_config = ConfigDict(extra="forbid")

    max_tags: int = Field(default=3, ge=0)
    folders: dict[str, list[str]] = Field(default_factory=dict)
    keywords: dict[str, list[str]] = Field(default_factory=dict)
    links: LinkRules = Field(default_factory=LinkRules)

    @field_validator("folders", "keywords", mode="before")
    @classmethod
    def _tags_per_key(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError("expected a mapping of `key: tag` or `key: [tags]`")
        return {str(key): _tag_list(tags) for key, tags in value.items()}

    @field_validator("folders")
    @classmethod
    def _folder_prefixes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        # `features` and `features/` both mean the folder, never `features-old/`.
        return {key.strip().strip("/").lower() + "/": tags for key, tags in value.items()}

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for keyword in value:
            if not keyword.strip():
                raise ValueError("a keyword is empty")
        return value


def rules_path(settings: Settings) -> Path:
    """AGENT_RULES_PATH; else the vault's .weavenn/rules.yaml; else the shipped defaults."""
    if settings.agent_rules_path is not None:
        return settings.agent_rules_path
    in_vault = settings.vault_path / VAULT_RULES
    return in_vault if in_vault.is_file() else DEFAULT_RULES


def load_rules(path: Path) -> Rules:
    """The rules in `path`, or a ConfigError naming the file and the first problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"rules file {path} not found: create it or fix AGENT_RULES_PATH"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read rules file {path}: {error}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"rules file {path} is not valid YAML{line}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"rules file {path} must be a mapping (max_tags, folders, keywords)")
    try:
        return Rules.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "file"
        raise ConfigError(f"rules file {path}: {where}: {first['msg']}") from None
