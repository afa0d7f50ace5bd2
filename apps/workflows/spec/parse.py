"""Reading spec YAML safely into plain data that remembers where every value was written.

Hostile YAML is refused before any Python object is built: the text's size is checked first,
then one pass over PyYAML's event stream (which builds nothing) checks nesting depth, node
count and aliases. Aliases are refused outright: a spec never needs them, and refusing them
makes "billion laughs" bombs impossible rather than merely capped. Only then is the node
tree composed and turned into dicts, lists and scalars, refusing duplicate keys, non-string
keys and tags other than YAML's plain ones, each error located.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml
from django.conf import settings
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from apps.workflows.spec.errors import Path, SpecError, format_path

_TAG = "tag:yaml.org,2002:"
# A timestamp stays the string it was written as: specs carry no dates the schema could use.
_SCALAR_TAGS = {_TAG + name for name in ("str", "int", "float", "bool", "null")}
_TIMESTAMP_TAG = _TAG + "timestamp"


@dataclass
class LocatedDocument:
    """The document as plain data, with the 1-based (line, column) of every value and key."""

    data: object = None
    value_marks: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Path) -> tuple[int, int]:
        """Where the value at `path` was written; for a missing path, its nearest written parent.

        A mapping or list is located at the key that names it (its value starts a line later).
        """
        path = tuple(path)
        while path:
            if path in self.value_marks:
                value = self.value_at(path)
                if isinstance(value, (dict, list)) and path in self.key_marks:
                    return self.key_marks[path]
                return self.value_marks[path]
            path = path[:-1]
        return self.value_marks.get((), (1, 1))

    def locate_key(self, path: Path) -> tuple[int, int]:
        return self.key_marks.get(tuple(path)) or self.locate(path)

    def value_at(self, path: Path):
        value = self.data
        for part in path:
            value = value[part]
        return value

    def error(self, path: Path, message: str, hint: str, *, at_key: bool = False) -> SpecError:
        line, column = self.locate_key(path) if at_key else self.locate(path)
        return SpecError(line, column, format_path(path), message, hint)


class _Refused(Exception):
    def __init__(self, error: SpecError):
        self.error = error


def _position(mark) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _refuse(mark, message: str, hint: str, path: Path = ()) -> _Refused:
    line, column = _position(mark)
    return _Refused(SpecError(line, column, format_path(path), message, hint))


def parse_yaml(text: str) -> tuple[LocatedDocument | None, list[SpecError]]:
    """The located document, or None and the (single) error that stopped reading it."""
    try:
        _check_size(text)
        _check_event_stream(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        document = LocatedDocument()
        if root is None:
            raise _Refused(SpecError(1, 1, "(document)", "the spec is empty",
                                     "Start with `name:` and a `steps:` list; see the example on the editor page."))
        document.data = _build(root, (), document)
        return document, []
    except _Refused as refused:
        return None, [refused.error]
    except yaml.MarkedYAMLError as exc:
        line, column = _position(exc.problem_mark or exc.context_mark)
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        return None, [SpecError(line, column, "(document)", f"this is not valid YAML: {problem}",
                                "Check the indentation and the quoting on this line and the one before it.")]
    except yaml.YAMLError as exc:
        return None, [SpecError(1, 1, "(document)", f"this is not valid YAML: {exc}",
                                "Check that the text is YAML, with one document and no binary content.")]


def _check_size(text: str) -> None:
    size = len(text.encode("utf-8", errors="replace"))
    if size > settings.FLOWDECK_SPEC_MAX_BYTES:
        raise _Refused(SpecError(1, 1, "(document)",
                                 f"the spec is {size:,} bytes; the limit is {settings.FLOWDECK_SPEC_MAX_BYTES:,}",
                                 "Split the workflow into smaller workflows chained with an `after` trigger."))


def _check_event_stream(text: str) -> None:
    max_depth, max_nodes = settings.FLOWDECK_SPEC_MAX_DEPTH, settings.FLOWDECK_SPEC_MAX_NODES
    depth = nodes = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise _refuse(event.start_mark, f"YAML aliases (*{event.anchor}) are not allowed in a spec",
                          "Write the value out in full, or put shared step settings under `defaults`.")
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > max_depth:
                raise _refuse(event.start_mark, f"the spec is nested more than {max_depth} levels deep",
                              "Flatten this value; a spec never needs that much nesting.")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        if isinstance(event, (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            nodes += 1
            if nodes > max_nodes:
                raise _refuse(event.start_mark, f"the spec has more than {max_nodes:,} values",
                              "Split the workflow into smaller workflows chained with an `after` trigger.")


def _build(node, path: Path, document: LocatedDocument):
    document.value_marks[path] = _position(node.start_mark)
    if isinstance(node, MappingNode):
        if node.tag != _TAG + "map":
            raise _refuse(node.start_mark, f"the YAML tag {node.tag} is not allowed", "Remove the `!` tag.", path)
        mapping: dict[str, object] = {}
        for key_node, value_node in node.value:
            key = _key(key_node, path)
            if key in mapping:
                line, column = document.key_marks[(*path, key)]
                raise _refuse(key_node.start_mark, f"`{key}` is written twice here (first on line {line})",
                              "Keep one of the two entries and delete the other.", (*path, key))
            document.key_marks[(*path, key)] = _position(key_node.start_mark)
            mapping[key] = _build(value_node, (*path, key), document)
        return mapping
    if isinstance(node, SequenceNode):
        if node.tag != _TAG + "seq":
            raise _refuse(node.start_mark, f"the YAML tag {node.tag} is not allowed", "Remove the `!` tag.", path)
        return [_build(item, (*path, index), document) for index, item in enumerate(node.value)]
    return _scalar(node, path)


def _scalar(node: ScalarNode, path: Path):
    if node.tag == _TIMESTAMP_TAG:
        return node.value
    if node.tag not in _SCALAR_TAGS:
        raise _refuse(node.start_mark, f"the YAML tag {node.tag} is not allowed",
                      "Remove the `!` tag and write a plain value.", path)
    return SafeConstructor().construct_object(node)


def _key(node, path: Path) -> str:
    if isinstance(node, ScalarNode) and node.tag == _TAG + "merge":
        raise _refuse(node.start_mark, "YAML merge keys (<<) are not allowed in a spec",
                      "Write the keys out in full, or put shared step settings under `defaults`.", path)
    if not isinstance(node, ScalarNode):
        raise _refuse(node.start_mark, "a key must be a plain name, not a list or mapping",
                      "Use a name such as `retries` as the key.", path)
    value = _scalar(node, path)
    if not isinstance(value, str):
        kind = {bool: "true/false", type(None): "null", int: "number", float: "number"}.get(type(value), "value")
        raise _refuse(node.start_mark, f"the key `{node.value}` is read as a {kind}, not a name",
                      f'Put it in quotes: "{node.value}":', path)
    return value
