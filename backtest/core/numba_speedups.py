"""Two costs of numba's compiler that the engine's wide context record makes large.

Both replace a numba method with one that returns the same value faster; neither changes what is
compiled. Measured on a cold start (one process, reference strategy): about 5,400 reprs of the
context's record type at 0.5 ms each, and 92,000 hashes and comparisons of compiler flags at
10 us each.

- `Record.__repr__`: numba formats the type of every argument for each compiler pass (an event
  field) and in some lookups; the context record has ~150 fields and a 19 kB repr. numba types
  are immutable, so the repr is computed once per type object.
- `TargetConfig.values()`: called to hash and compare the flags that key numba's cache of
  overload implementations, once per overload tried at each `a[i]`; it went through a property
  per option. The replacement merges the stored values over the defaults: the same dict.
"""
from numba.core import targetconfig
from numba.core.types import npytypes

_record_repr = npytypes.Record.__repr__
_numba_values = targetconfig.TargetConfig.values


def _cached_record_repr(self):
    try:
        return self.__dict__["_cascade_repr"]
    except KeyError:
        text = self.__dict__["_cascade_repr"] = _record_repr(self)
        return text


_defaults: dict[type, dict] = {}  # per TargetConfig class: its options' defaults


def _values(self):
    defaults = _defaults.get(type(self))
    if defaults is None:
        defaults = _defaults[type(self)] = {name: o.default for name, o in self.options.items()}
    return {**defaults, **self._values}  # a property returns _values.get(name, default)


def install() -> None:
    npytypes.Record.__repr__ = _cached_record_repr
    targetconfig.TargetConfig.values = _values
