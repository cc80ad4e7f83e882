"""Safe YAML reading that remembers where every value was written.

Recipes are untrusted input: only YAML's standard scalar, sequence and mapping
types are accepted (no ``!!python`` tags, no merge keys), duplicate keys are
errors, and the size of the file, its nesting depth and its expansion through
aliases are capped, so an "alias bomb" or a self-referencing anchor is refused
quickly.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import yaml

from graphkit._errors import RecipeError

MAX_BYTES = 1 << 20
MAX_VALUES = 100_000
#: Recipes nest a few levels; an anchor that refers to itself would nest forever.
MAX_DEPTH = 64

Path_ = tuple[str | int, ...]

_STR_TAG = "tag:yaml.org,2002:str"
_EXPONENT_FLOAT = re.compile(r"^[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+$")
_STANDARD_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


@dataclasses.dataclass
class Located:
    """Parsed YAML data plus the line and column (1-based) of each value and key."""

    data: Any
    values: dict[Path_, tuple[int, int]]
    keys: dict[Path_, tuple[int, int]]

    def where(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """The place of ``path``, or of its nearest written ancestor."""
        table = self.keys if key else self.values
        for end in range(len(path), -1, -1):
            place = table.get(path[:end]) or self.values.get(path[:end])
            if place is not None:
                return place
        return (1, 1)


def load_yaml(text: str, filename: str) -> Located:
    """Parse one YAML document.

    Raises:
        RecipeError: a syntax error, an unsafe tag, a duplicate key or a
            document too large, each with its place in ``filename``.
    """
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise RecipeError(f"{filename}: larger than {MAX_BYTES // 1024} KiB; not a recipe")
    try:
        # The reader checks every character as the loader is made: it can fail here too.
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as error:
        raise RecipeError(_reader_error(error, text, filename)) from None
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as error:
            raise RecipeError(_syntax_error(error, filename)) from None
        except yaml.reader.ReaderError as error:
            raise RecipeError(_reader_error(error, text, filename)) from None
        except yaml.YAMLError as error:
            message = " ".join(str(error).split())
            raise RecipeError(f"{filename}: YAML syntax error: {message}") from None
        except RecursionError:
            raise RecipeError(f"{filename}: YAML nested too deeply") from None
        located = Located(None, {}, {})
        if node is not None:
            located.data = _Builder(loader, filename, located).build(node)
        return located
    finally:
        loader.dispose()


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, filename: str, located: Located) -> None:
        self.loader = loader
        self.filename = filename
        self.located = located
        self.count = 0

    def fail(self, node: yaml.Node, message: str) -> RecipeError:
        mark = node.start_mark
        return RecipeError(f"{self.filename}:{mark.line + 1}:{mark.column + 1}: {message}")

    def build(self, root: yaml.Node) -> Any:
        # Iterative, so nesting depth cannot exhaust the interpreter's stack.
        result: dict[str, Any] = {}
        stack: list[tuple[yaml.Node, Path_, Any, Any]] = [(root, (), result, "root")]
        while stack:
            node, path, parent, slot = stack.pop()
            self.count += 1
            if self.count > MAX_VALUES:
                raise self.fail(node, f"more than {MAX_VALUES} values (an alias bomb?); refused")
            if len(path) > MAX_DEPTH:
                # Also stops an anchor that contains itself, which would nest without end.
                raise self.fail(node, f"nested deeper than {MAX_DEPTH} levels; refused")
            self.located.values.setdefault(path, _place(node))
            if isinstance(node, yaml.ScalarNode):
                parent[slot] = self.scalar(node)
            elif isinstance(node, yaml.SequenceNode):
                self.check_tag(node)
                items: list[Any] = [None] * len(node.value)
                parent[slot] = items
                for index, child in reversed(list(enumerate(node.value))):
                    stack.append((child, (*path, index), items, index))
            elif isinstance(node, yaml.MappingNode):
                self.check_tag(node)
                mapping: dict[Any, Any] = {}
                parent[slot] = mapping
                children = []
                for key_node, value_node in node.value:
                    key = self.key(key_node)
                    if key in mapping:
                        raise self.fail(key_node, f"duplicate key {key!r}")
                    mapping[key] = None
                    self.located.keys[(*path, key)] = _place(key_node)
                    children.append((value_node, (*path, key), mapping, key))
                stack.extend(reversed(children))
            else:  # pragma: no cover - the composer makes no other node kinds
                raise self.fail(node, "unsupported YAML node")
        return result["root"]

    def key(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, "a mapping key must be a plain value")
        if node.tag == "tag:yaml.org,2002:merge":
            raise self.fail(node, "merge keys (<<) are not supported")
        return self.scalar(node)

    def scalar(self, node: yaml.ScalarNode) -> Any:
        # YAML 1.1 reads a plain 1e-5 as text; people mean a number (as YAML 1.2 does).
        if node.style is None and node.tag == _STR_TAG and _EXPONENT_FLOAT.match(node.value):
            return float(node.value)
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError:
            raise self.fail(node, f"unsupported YAML tag {_short(node.tag)}; refused") from None
        except (ValueError, TypeError) as error:
            raise self.fail(node, f"invalid value: {error}") from None
        if isinstance(value, str) and not _is_utf8(value):
            # "\ud800" escapes parse, but no model, file name or terminal can hold them.
            raise self.fail(node, f"invalid value: {value!r} holds a lone surrogate")
        return value

    def check_tag(self, node: yaml.Node) -> None:
        if node.tag not in _STANDARD_COLLECTION_TAGS:
            raise self.fail(node, f"unsupported YAML tag {_short(node.tag)}; refused")


def _syntax_error(error: yaml.MarkedYAMLError, filename: str) -> str:
    mark = error.problem_mark or error.context_mark
    where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
    message = f"{where}: YAML syntax error: {error.problem or error.context or 'invalid YAML'}"
    start = error.context_mark
    if error.problem and error.context and start is not None and start is not mark:
        # "while parsing a flow mapping" and where it began: often the real culprit.
        message += (
            f" ({error.context} that began at line {start.line + 1}, column {start.column + 1})"
        )
    return message


def _reader_error(error: yaml.reader.ReaderError, text: str, filename: str) -> str:
    before = text[: error.position]
    line = before.count("\n") + 1
    column = error.position - (before.rfind("\n") + 1) + 1
    character = f"#x{error.character:04x}" if isinstance(error.character, int) else "a byte"
    return f"{filename}:{line}:{column}: YAML syntax error: unacceptable character {character}"


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _short(tag: str) -> str:
    return (
        "!!" + tag.removeprefix("tag:yaml.org,2002:")
        if tag.startswith("tag:yaml.org,2002:")
        else tag
    )


def _place(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)
