"""Laying one config mapping over another, as a child config (`extends:`) or a phase is laid
over its parent: sections merge key by key, any other value replaces the parent's."""

from __future__ import annotations

from pydantic import BaseModel

from selftaught.config.limits import Strict


def merge(base: dict, over: dict, model: type[BaseModel]) -> dict:
    """`over` laid on `base`: config sections merge key by key; any other value (a count
    table like task.pool, a list, null) replaces the parent's whole."""
    out = dict(base)
    for key, value in over.items():
        section = section_model(model, key)
        if section is not None and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value, section)
        else:
            out[key] = value
    return out


def section_model(model: type[BaseModel], key) -> type[BaseModel] | None:
    field = model.model_fields.get(key) if isinstance(key, str) else None
    if field is None:
        return None
    for kind in (field.annotation, *getattr(field.annotation, "__args__", ())):
        if isinstance(kind, type) and issubclass(kind, Strict):
            return kind
    return None
