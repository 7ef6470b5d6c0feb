"""Short symbol names: a compiled function's long argument types are named by a hash.

numba names each compiled function after its argument types (Itanium mangling, itanium_mangler.py),
and the name of the State's type spells out every field of its records: 11 KB in the name of
every kernel that takes `c`. On a cold start those names were 4.1 MB of the 13.2 MB of LLVM IR
text Python wrote and LLVM parsed (361 of them), numba escaped each one character by character
while mangling it, and the loop's assembly was 3.9 MB for 0.5 MB of code. A type whose mangled
form is longer than _MAX characters is now mangled as one identifier made of a hash of that
form, remembered per type.

Only the names change: the loop's machine code is the same instruction for instruction
(benchmarks/README.md). Two types share a name only if their full mangled forms collide in
96 bits of SHA-256. A caller refers to a callee by the name the callee was compiled (or cached)
with, so names made with or without this patch never need to agree; its cache is kept apart
anyway (core/__init__.py: CODE_PATCHES).
"""
import hashlib

from numba.core import itanium_mangler, types

_MAX = 96  # characters: a record or a tuple of a few arrays stays readable, the State does not
_full = itanium_mangler.mangle_type_or_value
_names: dict = {}  # type -> its mangled name (types are immutable and hashable)


def mangle_type_or_value(typ) -> str:
    """numba's mangle_type_or_value, with a hash in place of a long type's mangled form."""
    if not isinstance(typ, types.Type):  # an int or a string in a template: as numba does
        return _full(typ)
    name = _names.get(typ)
    if name is None:
        name = _full(typ)
        if len(name) > _MAX:
            digest = hashlib.sha256(name.encode()).hexdigest()[:24]
            name = itanium_mangler.mangle_identifier("T" + digest)
        _names[typ] = name
    return name


def install() -> None:
    """numba's mangler looks mangle_type_or_value up in its module at each call."""
    itanium_mangler.mangle_type_or_value = mangle_type_or_value
