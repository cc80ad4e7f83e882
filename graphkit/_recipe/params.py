"""Parameter schemas: the pydantic base class every pass and frontend uses, and error formatting."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import pydantic
from pydantic_core import PydanticUndefined


class Params(pydantic.BaseModel):
    """Base class of a pass's (or frontend's) parameters.

    Unknown parameters are errors, values are not coerced between types
    (``"3"`` is not an ``int``), and every field must carry a description,
    which ``graphkit passes NAME`` shows.
    """

    model_config = pydantic.ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


def _against_recipe(value: str, info: pydantic.ValidationInfo) -> str:
    folder = (info.context or {}).get("recipe_dir")
    if not value:
        raise ValueError("must be a path written as text")
    return str(Path(folder) / value) if folder is not None else value


#: A file a pass reads, written in a recipe relative to the recipe's folder
#: (resolved while the recipe is validated); in a library call, relative to
#: the current folder.
RecipePath = Annotated[str, pydantic.AfterValidator(_against_recipe)]


class NoParams(Params):
    """Parameters of a pass that takes none."""


class SaveOptions(Params):
    """How a model is written: the recipe's ``save:`` block."""

    external_data: bool | str | None = pydantic.Field(
        None,
        description=(
            "Where weights go. Unset: next to the model as '<output>.data' when the model "
            "already keeps weights outside or would pass protobuf's 2 GiB limit, inline "
            "otherwise. true: always to '<output>.data'. false: always inline. "
            "A file name: that file, in the output's folder."
        ),
    )
    threshold_bytes: int = pydantic.Field(
        1024, ge=0, description="Tensors smaller than this stay inline when external data is used."
    )
    max_shard_bytes: int | None = pydantic.Field(
        None,
        ge=1,
        description=(
            "Split external data into numbered files ('model-00001-of-00003.onnx.data', ...) "
            "of at most this size; a tensor larger than this gets a file of its own."
        ),
    )

    @pydantic.field_validator("external_data")
    @classmethod
    def _plain_file_name(cls, value: bool | str | None) -> bool | str | None:
        if isinstance(value, str) and (
            not value or value in (".", "..") or "/" in value or "\\" in value
        ):
            raise ValueError(
                f"{value!r} is not a plain file name; external data is written in the "
                "output's folder"
            )
        return value

    @pydantic.model_validator(mode="after")
    def _shards_need_external_data(self) -> SaveOptions:
        if self.external_data is False and self.max_shard_bytes is not None:
            raise ValueError("max_shard_bytes splits external data, but external_data is false")
        return self


def undescribed_fields(params: type[Params]) -> list[str]:
    """The fields of ``params`` that have no description."""
    return [name for name, field in params.model_fields.items() if not field.description]


def format_loc(loc: Iterable[str | int]) -> str:
    """Render a location tuple as ``passes[3].set_opset.version``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validation_problems(
    error: pydantic.ValidationError, *, unknown: str = "unknown key", known: Iterable[str] = ()
) -> list[tuple[tuple[str | int, ...], str]]:
    """Flatten a pydantic error into ``(location, message)`` pairs.

    An unknown name is reported as ``unknown`` and, at the top level, with the
    nearest of the ``known`` names. Pydantic appends the name of the union
    branch it tried to some locations (``function-after[...]``, ``int``);
    those are dropped so the location is the path a user wrote.
    """
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(p for p in item["loc"] if isinstance(p, int) or not _is_branch_tag(p))
        if item["type"] == "extra_forbidden":
            message = unknown + (did_you_mean(str(loc[-1]), known) if len(loc) == 1 else "")
        elif item["type"] == "missing":
            message = "required, but missing"
        else:
            message = item["msg"].removeprefix("Value error, ")
        problems.append((loc, message))
    return problems


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the nearest of ``choices``, or ``""``."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def _is_branch_tag(part: str) -> bool:
    return "[" in part or part in {"int", "str", "float", "bool", "list", "dict", "none"}


def type_name(annotation: Any) -> str:
    """A short readable name for a type annotation: ``dict[str, int]``, ``int | None``."""
    if annotation is type(None):
        return "None"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_name(a) for a in args)}]" if args else name
    return getattr(annotation, "__name__", str(annotation))


def describe_fields(params: type[Params]) -> list[tuple[str, str, str, str]]:
    """``(name, type, default, description)`` for every field of ``params``."""
    rows = []
    for name, field in params.model_fields.items():
        if field.is_required():
            default = "required"
        elif field.default_factory is not None:
            default = repr(field.default_factory())
        elif field.default is PydanticUndefined:
            default = "required"
        else:
            default = repr(field.default)
        rows.append((name, type_name(field.annotation), default, field.description or ""))
    return rows
