"""Parameter types for sizes of dimensions, shared by the passes that fix shapes."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, PlainValidator

Size = Annotated[int, Field(ge=1)]


def _size_or_name(value: object) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"a size is a whole number or a dim name, not {value!r}")
    # 0 is a size: an input can be empty (as can the data a shape is read from).
    if isinstance(value, int) and value < 0:
        raise ValueError("a size cannot be negative")
    return value


#: A fixed size, or the name of a symbolic dim.
SizeOrName = Annotated[int | str, PlainValidator(_size_or_name)]
