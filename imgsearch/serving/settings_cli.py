"""Command-line flags generated from a pydantic-settings class, so each knob
is declared once (the settings class) and works as a flag or an env var."""

from __future__ import annotations

import argparse
from typing import Any, TypeVar

from pydantic_settings import BaseSettings

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def add_settings_arguments(
    parser: argparse.ArgumentParser, settings_cls: type[BaseSettings], env_prefix: str
) -> None:
    """One --flag per settings field; defaults stay None so env vars apply."""
    for name, field in settings_cls.model_fields.items():
        flag = "--" + name.replace("_", "-")
        annotation = field.annotation
        kind: Any = str
        if annotation in (int, float):
            kind = annotation
        help_text = field.description or ""
        default = field.default
        help_text = f"{help_text} [env {env_prefix}{name.upper()}; default {default!r}]".strip()
        if annotation is bool:
            parser.add_argument(
                flag, dest=name, default=None, action=argparse.BooleanOptionalAction, help=help_text
            )
        else:
            parser.add_argument(flag, dest=name, default=None, type=kind, help=help_text)


def settings_from_args(args: argparse.Namespace, settings_cls: type[SettingsT]) -> SettingsT:
    """Settings from env vars, overridden by the flags that were given."""
    given = {
        k: v for k, v in vars(args).items() if v is not None and k in settings_cls.model_fields
    }
    return settings_cls(**given)
