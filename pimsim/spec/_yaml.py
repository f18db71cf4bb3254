"""The one place YAML is read: safe, position-tracking, hostile-input-resistant loading.

A file is read in three passes so that hostile input is refused before anything expands:

1. bytes: size limit, no NUL bytes, valid UTF-8;
2. parser events (iterative, no recursion): nesting depth, event count, no non-standard tags;
3. composition into nodes, then our own construction into plain dicts/lists/scalars, counting the
   nodes built so that alias/anchor bombs stop early, refusing duplicate keys, merge keys and
   numbers that do not fit 64 bits.

Every value keeps its :class:`~pimsim.errors.Location`, keyed by its field path (a tuple of keys
and list indices), so later validation errors can name ``file:line:column`` and ``field.path``.
"""

from __future__ import annotations

import copy
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    MappingEndEvent,
    NodeEvent,
    SequenceEndEvent,
)
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

from pimsim.errors import Location, SpecError

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_EVENTS = 500_000
MAX_NODES = 200_000  # after alias expansion
MAX_BASE_DEPTH = 16
INT_LIMIT = 2**63

_CORE = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "map", "seq")}

Path_ = tuple  # a field path: keys (str) and list indices (int)


def format_path(path: Path_) -> str:
    """``("pe", "components", 2, "name")`` -> ``"pe.components[2].name"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


@dataclass
class Document:
    """A YAML mapping with the location of every value and every key, by field path."""

    data: dict
    source: str
    locations: dict[Path_, Location] = field(default_factory=dict)
    key_locations: dict[Path_, Location] = field(default_factory=dict)

    def locate(self, path: Path_, key: bool = False) -> Location:
        """Location of ``path`` (its key with ``key=True``), else of its nearest located parent."""
        table = self.key_locations if key else self.locations
        if path in table:
            return table[path]
        for cut in range(len(path) - 1, -1, -1):
            if path[:cut] in self.locations:
                return self.locations[path[:cut]]
        return Location(self.source)

    def copy(self) -> Document:
        """An independent copy: new mappings and lists, the same (immutable) scalars and
        locations; far cheaper than ``copy.deepcopy``, which sweeps pay for every design."""
        return Document(_copy_tree(self.data), self.source, dict(self.locations),
                        dict(self.key_locations))


def _copy_tree(value):
    if isinstance(value, dict):
        return {k: _copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_tree(v) for v in value]
    return value


def _error(message: str, source: str, mark=None, path: Path_ = ()) -> SpecError:
    loc = Location(source, mark.line + 1, mark.column + 1) if mark is not None else Location(source)
    return SpecError(message, loc, format_path(path))


def _read_text(path: Path) -> str:
    src = str(path)
    if not path.exists():
        raise SpecError("no such file", Location(src))
    if path.is_dir():
        raise SpecError("is a directory, expected a YAML file", Location(src))
    if not path.is_file():  # a device (/dev/zero), FIFO or socket: reading could never end
        raise SpecError("not a regular file (a device, FIFO or socket): give a YAML file",
                        Location(src))
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise SpecError(
            f"file is {size} bytes, over the {MAX_FILE_BYTES} byte limit", Location(src)
        )
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)  # a file that grows while read stops here
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror}", Location(src)) from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(f"file is over the {MAX_FILE_BYTES} byte limit", Location(src))
    if b"\x00" in raw:
        raise SpecError("binary file (contains NUL bytes), expected YAML text", Location(src))
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"not UTF-8 text (byte {exc.start}), expected YAML", Location(src)
        ) from None


def _check_events(text: str, source: str) -> None:
    """Pass 2: walk parser events without building anything."""
    yaml = YAML(typ="safe", pure=True)
    depth = 0
    count = 0
    for event in yaml.parse(io.StringIO(text)):
        count += 1
        if count > MAX_EVENTS:
            raise _error(f"document has more than {MAX_EVENTS} YAML events", source)
        if isinstance(event, NodeEvent) and not isinstance(event, AliasEvent):
            tag = getattr(event, "tag", None)
            if tag is not None and str(tag) not in _ALLOWED_TAGS and str(tag) != "!":
                raise _error(
                    f"tag {tag} is not allowed: only plain YAML values (mappings, lists, "
                    "strings, numbers, booleans, null) are accepted",
                    source,
                    event.start_mark,
                )
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _error(f"nesting deeper than {MAX_DEPTH} levels", source, event.start_mark)
        elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
            depth -= 1


class _Builder:
    """Pass 3: nodes -> plain Python values, recording locations."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.nodes = 0
        self.locations: dict[Path_, Location] = {}
        self.key_locations: dict[Path_, Location] = {}
        self.open: set[int] = set()  # containers being built: one met again is inside itself

    def loc(self, node) -> Location:
        return Location(self.source, node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node, path: Path_) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _error(
                f"document expands to more than {MAX_NODES} values (anchor/alias bomb?)",
                self.source,
                node.start_mark,
                path,
            )
        self.locations[path] = self.loc(node)
        tag = str(node.tag)
        if isinstance(node, (MappingNode, SequenceNode)):
            if id(node) in self.open:
                raise _error(
                    "recursive alias: this anchored value contains itself",
                    self.source,
                    node.start_mark,
                    path,
                )
            self.open.add(id(node))
            try:
                return self._container(node, path)
            finally:
                self.open.discard(id(node))
        if tag not in _ALLOWED_TAGS:
            raise _error(f"tag {tag} is not allowed", self.source, node.start_mark, path)
        return self.scalar(node, path)

    def _container(self, node, path: Path_) -> Any:
        if isinstance(node, MappingNode):
            out: dict = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    raise _error(
                        "mapping keys must be plain strings", self.source, key_node.start_mark, path
                    )
                key = key_node.value
                if key == "<<":
                    raise _error(
                        "merge keys (<<) are not supported; use 'base:' to inherit",
                        self.source,
                        key_node.start_mark,
                        path,
                    )
                if str(key_node.tag) == _CORE + "int":
                    key = self.scalar(key_node, path)
                if key in out:
                    first = self.key_locations[path + (key,)]
                    raise _error(
                        f"duplicate key {key!r} (first defined at line {first.line})",
                        self.source,
                        key_node.start_mark,
                        path + (key,),
                    )
                self.key_locations[path + (key,)] = self.loc(key_node)
                out[key] = self.build(value_node, path + (key,))
            return out
        return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]

    def scalar(self, node, path: Path_) -> Any:
        tag, text = str(node.tag), node.value
        if tag == _CORE + "str":
            return text
        if tag == _CORE + "null":
            return None
        if tag == _CORE + "bool":
            return text.lower() == "true"
        if tag == _CORE + "int":
            digits = text.replace("_", "").lstrip("+-")
            if len(digits) > 30:
                raise _error("integer too large", self.source, node.start_mark, path)
            try:
                value = int(text.replace("_", ""), 0)
            except ValueError:
                value = int(text.replace("_", ""))
            if abs(value) >= INT_LIMIT:
                raise _error("integer does not fit in 64 bits", self.source, node.start_mark, path)
            return value
        if tag == _CORE + "float":
            if len(text) > 64:
                raise _error("number literal too long", self.source, node.start_mark, path)
            value = float(
                text.replace("_", "")
                .replace(".inf", "inf")
                .replace(".nan", "nan")
                .replace(".Inf", "inf")
                .replace(".NaN", "nan")
                .replace(".INF", "inf")
                .replace(".NAN", "nan")
            )
            if not math.isfinite(value):
                raise _error(f"number {text!r} is not finite", self.source, node.start_mark, path)
            return value
        raise _error(f"tag {tag} is not allowed", self.source, node.start_mark, path)


def parse_text(text: str, source: str) -> tuple[Any, dict, dict]:
    """Parse one YAML document from ``text``; returns (value, locations, key_locations)."""
    yaml = YAML(typ="safe", pure=True)
    try:
        _check_events(text, source)
        node = yaml.compose(io.StringIO(text))
    except SpecError:
        raise
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = exc.problem or exc.context or "invalid YAML"
        if "\\t" in reason or "\t" in reason:
            raise _error(
                "tab character where YAML expects indentation or a value; YAML indents with spaces",
                source,
                mark,
            ) from None
        raise _error(f"invalid YAML: {reason}", source, mark) from None
    except YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", Location(source)) from None
    except RecursionError:
        raise SpecError("nesting too deep", Location(source)) from None
    if node is None:
        return None, {}, {}
    builder = _Builder(source)
    try:
        value = builder.build(node, ())
    except RecursionError:
        raise SpecError("nesting too deep", Location(source)) from None
    return value, builder.locations, builder.key_locations


def read_document(path: str | os.PathLike, kinds: tuple[str, ...]) -> Document:
    """Read a pimsim YAML file: a mapping whose ``kind`` is one of ``kinds``.

    Resolves ``base: other.yaml`` (relative to the including file; mappings merge deeply, lists
    and scalars replace) and returns the merged document.
    """
    return _read(Path(path), kinds, ())


def _read(path: Path, kinds: tuple[str, ...], chain: tuple[Path, ...]) -> Document:
    source = str(path)
    text = _read_text(path)
    value, locs, key_locs = parse_text(text, source)
    if value is None:
        raise SpecError(
            f"empty file: expected a mapping starting with 'kind: {kinds[0]}'", Location(source)
        )
    if not isinstance(value, dict):
        raise SpecError(
            f"expected a mapping starting with 'kind: {kinds[0]}', got a {type(value).__name__}",
            locs.get((), Location(source)),
        )
    doc = Document(value, source, locs, key_locs)
    kind = value.get("kind")
    if kind is None:
        raise SpecError(
            f"missing 'kind' (expected one of {', '.join(kinds)})", Location(source, 1, 1), "kind"
        )
    if kind not in kinds:
        raise SpecError(
            f"kind {kind!r} is not accepted here (expected {' or '.join(kinds)})",
            doc.locate(("kind",)),
            "kind",
        )
    base = value.pop("base", None)
    if base is None:
        return doc
    if not isinstance(base, str):
        raise SpecError("base must be a file path (string)", doc.locate(("base",)), "base")
    base_path = (path.parent / base).resolve()
    if base_path in chain or base_path == path.resolve():
        raise SpecError(f"inheritance cycle through {base}", doc.locate(("base",)), "base")
    if len(chain) >= MAX_BASE_DEPTH:
        raise SpecError("inheritance chain too long", doc.locate(("base",)), "base")
    try:
        parent = _read(base_path, kinds, chain + (path.resolve(),))
    except SpecError as exc:
        if exc.message == "no such file" and exc.location and exc.location.source == str(base_path):
            raise SpecError(f"base file {base} not found", doc.locate(("base",)), "base") from None
        raise
    if parent.data.get("kind") != kind:
        raise SpecError(
            f"base file is kind {parent.data.get('kind')!r}, this file is {kind!r}",
            doc.locate(("base",)),
            "base",
        )
    merge_into(parent, doc, ())
    return parent


def _drop_under(doc: Document, path: Path_) -> None:
    for table in (doc.locations, doc.key_locations):
        for p in [p for p in table if p[: len(path)] == path and len(p) > len(path)]:
            del table[p]


def merge_into(target: Document, overlay: Document, path: Path_) -> None:
    """Deep-merge ``overlay`` into ``target`` at ``path`` (mappings merge; others replace)."""
    src = overlay.data
    for part in path:
        src = src[part]
    dst = target.data
    for part in path:
        dst = dst[part]
    for key, value in src.items():
        sub = path + (key,)
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            target.locations[sub] = overlay.locations.get(sub, target.locate(sub))
            merge_into(target, overlay, sub)
            continue
        _drop_under(target, sub)
        dst[key] = copy.deepcopy(value)
        for table, other in (
            (target.locations, overlay.locations),
            (target.key_locations, overlay.key_locations),
        ):
            for p, loc in other.items():
                if p[: len(sub)] == sub:
                    table[p] = loc


def parse_override_path(text: str, source: str) -> Path_:
    """``"pe.components[1].count"`` -> ``("pe", "components", 1, "count")``."""
    path: list = []
    for part in text.split("."):
        name, _, rest = part.partition("[")
        if not name:
            raise SpecError(f"bad field path {text!r}", Location(source))
        path.append(name)
        while rest:
            index, _, rest = rest.partition("]")
            if not index.isdigit():
                raise SpecError(f"bad list index in {text!r}", Location(source))
            path.append(int(index))
            rest = rest.lstrip("[")
    return tuple(path)


def apply_overrides(doc: Document, overrides) -> None:
    """Apply ``{"adc.bits": 5}`` or ``["adc.bits=5"]`` to ``doc`` in place.

    String values of ``"path=value"`` items are parsed as YAML scalars/flow values with the same
    safe loader; the location of each overridden value is the override itself.
    """
    items: list[tuple[str, Any, str]] = []
    if isinstance(overrides, dict):
        items = [(k, v, f"override {k}={v!r}") for k, v in overrides.items()]
    else:
        for entry in overrides or ():
            if "=" not in entry:
                raise SpecError("expected FIELD=VALUE, e.g. adc.bits=5", Location(f"--set {entry}"))
            key, _, text = entry.partition("=")
            source = f"--set {entry}"
            value, _, _ = parse_text(text, source) if text.strip() else (None, {}, {})
            items.append((key.strip(), value, source))
    for key, value, source in items:
        path = parse_override_path(key, source)
        loc = Location(source)
        node = doc.data
        for i, part in enumerate(path[:-1]):
            nxt = path[i + 1]
            if isinstance(node, dict):
                if part not in node or node[part] is None:
                    node[part] = [] if isinstance(nxt, int) else {}
                    doc.locations[path[: i + 1]] = loc
                    doc.key_locations[path[: i + 1]] = loc
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                raise SpecError(
                    f"cannot set {key}: {format_path(path[: i + 1])} is not a "
                    "mapping or has no such item",
                    loc,
                    key,
                )
        last = path[-1]
        if isinstance(node, dict) and isinstance(last, str):
            old = node.get(last)
            node[last] = copy.deepcopy(value)
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            old = node[last]
            node[last] = copy.deepcopy(value)
        else:
            raise SpecError(f"cannot set {key}", loc, key)
        if isinstance(old, (dict, list)):  # only a replaced mapping or list has located parts
            _drop_under(doc, path)
        doc.locations[path] = loc
        doc.key_locations[path] = loc
