"""Go values that Python has no native shape for.

Python values stand for Go values: str, bool, int (int), float (float64), complex
(complex128), bytes ([]byte), list ([]interface{}), dict (map[string]interface{}),
None (a nil interface). What else Go has and the templates can reach is modelled here:
reflect's invalid Value (`NO_VALUE`), a byte (`Uint8`), structs (`Struct`), named types
with their own String() or MarshalJSON methods (`Typed`) and typed nil pointers
(`NilPointer`). fmt, encoding/json and text/template all read these shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class _NoValue:
    """Go's invalid reflect.Value: what a missing key yields; prints as `<no value>`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE = _NoValue()


class Uint8(int):
    """A byte: what `index` of a string yields in Go (a uint8)."""

    __slots__ = ()


# How a struct field's `omitempty` behaves: never omitted; omitted when empty (false, 0, "", empty
# slice or map); omitted only when nil (interface and pointer fields).
OMIT_NEVER, OMIT_EMPTY, OMIT_NIL = 0, 1, 2


@dataclass(frozen=True, eq=False)
class Struct:
    """A Go struct value (or pointer to one, when `pointer`).

    `fields` maps exported field names, in declaration order, to values.
    `json_fields` says how encoding/json writes it: (json name, field name, OMIT_*).
    `string` is the type's String() method, when it has one.
    """

    type_name: str
    fields: Mapping[str, Any]
    json_fields: tuple[tuple[str, str, int], ...] = ()
    pointer: bool = False
    string: Callable[[], str] | None = None


@dataclass(frozen=True, eq=False)
class Typed:
    """A value of a named Go type over a slice, map or string.

    It ranges, indexes and measures like `value`, but prints with `string`
    (its String() method) and marshals with `marshal` (its MarshalJSON) when given.
    `nil` marks a nil slice or map, which encoding/json writes as `null`.
    """

    type_name: str
    value: Any
    string: Callable[[], str] | None = None
    marshal: Callable[[], str] | None = None
    nil: bool = False


@dataclass(frozen=True)
class NilPointer:
    """A typed nil pointer: false, prints `<nil>`, and field access on it fails."""

    type_name: str



def is_nil(v: Any) -> bool:
    """A nil interface, pointer, slice or map (or the invalid value)."""
    return v is NO_VALUE or v is None or isinstance(v, NilPointer) or (isinstance(v, Typed) and v.nil)
