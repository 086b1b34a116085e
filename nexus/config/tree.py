"""Introspection of the settings tree: which model a key path leads to. Pure, over the classes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from nexus.config.model import NexusConfig


def inner_model(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds (``X``, ``X | None``, ``tuple[X, ...]``, ``dict[str, X]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = inner_model(arg)
        if found is not None:
            return found
    return None


def walk(loc: tuple[str | int, ...]) -> tuple[type[BaseModel], FieldInfo | None]:
    """The model that holds the last field of ``loc``, and that field's info; parts that are
    not fields (list indexes, map keys) are skipped."""
    model: type[BaseModel] = NexusConfig
    info: FieldInfo | None = None
    for part in loc:
        if isinstance(part, str) and part in model.model_fields:
            info = model.model_fields[part]
            model = inner_model(info.annotation) or model
    return model, info


def is_section(path: tuple[str, ...]) -> bool:
    """Whether every name of ``path`` is a field of the tree that holds a model (a section)."""
    model: type[BaseModel] | None = NexusConfig
    for part in path:
        if model is None or part not in model.model_fields:
            return False
        model = inner_model(model.model_fields[part].annotation)
    return model is not None
