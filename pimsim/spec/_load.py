"""Loading and validating spec files: YAML document -> frozen model, errors with positions."""

from __future__ import annotations

import os
import re
import typing
from pathlib import Path

from pydantic import BaseModel, ValidationError

from pimsim.errors import Location, SpecError, SpecErrors, did_you_mean
from pimsim.spec._arch import ArchSpec, FieldProblem
from pimsim.spec._yaml import Document, apply_overrides, format_path, read_document

_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
    "too_short": "at least this long:",
}

_MESSAGES = {
    "missing": "required field is missing",
    "extra_forbidden": "unknown field",
    "int_type": "expected an integer",
    "float_type": "expected a number",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "model_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
}


def _submodel(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class that owns the field at ``loc`` (for 'did you mean' suggestions)."""
    current: object = model
    skip_key = False
    for part in loc:
        if isinstance(part, int):
            continue
        if skip_key:  # a user-chosen key of a mapping field (e.g. a block name)
            skip_key = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        fields = current.model_fields
        info = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        if info is None:
            return None
        current = _unwrap(info.annotation)
        skip_key = typing.get_origin(info.annotation) is dict
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation):
    """The BaseModel inside ``X | None`` or ``list[X]``, else the annotation itself."""
    for arg in typing.get_args(annotation) or ():
        inner = _unwrap(arg)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation


def field_names(model: type[BaseModel]) -> list[str]:
    """Names a YAML file may use for ``model``'s fields (aliases where set)."""
    return [info.alias or name for name, info in model.model_fields.items()]


def _translate(exc: ValidationError, doc: Document, model: type[BaseModel]) -> SpecErrors:
    """pydantic errors -> SpecErrors with file:line:col, field path and an actionable message."""
    errors: list[SpecError] = []
    for err in exc.errors(include_url=False):
        # pydantic appends union member names ("int", "literal['auto']") to loc; drop them.
        loc = tuple(p for p in err["loc"] if isinstance(p, int) or not _is_type_tag(p))
        kind = err["type"]
        ctx = err.get("ctx") or {}
        problem = ctx.get("error")
        if isinstance(problem, FieldProblem):
            path = loc + tuple(problem.path)
            errors.append(SpecError(str(problem), doc.locate(path), format_path(path)))
            continue
        if kind == "extra_forbidden":
            owner = _submodel(model, loc[:-1])
            names = field_names(owner) if owner else []
            hint = did_you_mean(loc[-1], names) or (f" (allowed: {', '.join(names)})" * bool(names))
            message = f"unknown field '{loc[-1]}'{hint}"
            errors.append(SpecError(message, doc.locate(loc, key=True), format_path(loc)))
            continue
        message = _MESSAGES.get(kind, err["msg"])
        if kind == "missing":
            message = f"required field '{loc[-1]}' is missing"
        elif kind in ("literal_error", "enum"):
            expected = ctx.get("expected", "")
            options = re.findall(r"'([^']*)'", expected)
            hint = did_you_mean(err.get("input"), options)
            message = f"got {err.get('input')!r}, expected {expected}{hint}"
        elif kind in _BOUNDS:
            bound = next(iter(ctx.values()), "")
            message = f"must be {_BOUNDS[kind]} {bound}, got {err.get('input')!r}"
        elif kind not in _MESSAGES:
            message = err["msg"]
            if "input" in err and not isinstance(err["input"], dict | list):
                message += f" (got {err['input']!r})"
        else:
            message += f", got {_describe(err.get('input'))}"
        errors.append(SpecError(message, doc.locate(loc), format_path(loc)))
    unique: dict[str, SpecError] = {}
    for e in errors:
        unique.setdefault(str(e), e)
    ordered = sorted(unique.values(), key=_order)
    return SpecErrors(ordered)


def _model_names() -> set[str]:
    from pimsim.spec._fields import SpecModel

    names, todo = set(), [SpecModel]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def _is_type_tag(part: str) -> bool:
    """pydantic inserts the union member it tried into ``loc``: a type or model name."""
    return (
        part in ("int", "float", "str", "bool", "none")
        or part.startswith(("literal[", "constrained-", "function-", "list[", "dict["))
        or part in _model_names()
    )


def _describe(value) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{value!r}"


def _order(error: SpecError):
    loc = error.location or Location("")
    return (loc.source, loc.line or 0, loc.column or 0)


def validate_document(doc: Document, model: type[BaseModel]):
    """Validate a merged document against ``model``; raise :class:`SpecErrors` with positions."""
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        raise _translate(exc, doc, model) from None


def load_arch(path: str | os.PathLike, overrides=None) -> ArchSpec:
    """Load an accelerator spec (``kind: arch``) from YAML.

    ``overrides`` maps dotted field paths to values (``{"adc.bits": 5}``) or is a list of
    ``"field=value"`` strings as given to ``--set``; they pass the same validation as the file,
    and an invalid override is reported as the override. Raises :class:`~pimsim.errors.SpecError`.
    """
    return _arch_from_doc(read_document(Path(path), ("arch",)), overrides)


def _arch_from_doc(doc: Document, overrides=None) -> ArchSpec:
    """Apply ``overrides`` to ``doc``, validate it, and keep it as the spec's YAML source (what
    :func:`with_overrides` starts from)."""
    if overrides:
        apply_overrides(doc, overrides)
    spec = validate_document(doc, ArchSpec)
    spec._source = doc
    return spec


def with_overrides(spec: ArchSpec, overrides) -> ArchSpec:
    """A variant of a loaded spec with ``overrides`` applied to its YAML source and re-validated,
    so presets re-resolve exactly as if the file had said it (specs are never mutated)."""
    doc = spec._source
    if doc is None:
        doc = Document(spec.model_dump(by_alias=True, exclude_none=True), f"<{spec.name}>")
    return _arch_from_doc(doc.copy(), overrides)


def load_any(path: str | os.PathLike, overrides=None):
    """Load an arch or workload file by its ``kind``; returns ``(kind, object)``.

    ``overrides`` apply to arch files only; a sweep file is validated with the files it names.
    """
    doc = read_document(Path(path), ("arch", "workload", "sweep"))
    kind = doc.data["kind"]
    if kind == "sweep":
        from pimsim.spec._sweep import load_sweep

        if overrides:
            raise SpecError("--set applies to arch files, not to a sweep", Location(str(path)))
        return kind, load_sweep(path)
    if kind == "arch":
        return kind, _arch_from_doc(doc, overrides)
    from pimsim.workload._yaml import build_workload

    return kind, build_workload(doc, str(path))
