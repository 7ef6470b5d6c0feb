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
  per option. The replacement reads the same stored values and defaults directly.
"""
from numba.core import targetconfig
from numba.core.types import npytypes

_record_repr = npytypes.Record.__repr__


def _cached_record_repr(self):
    try:
        return self.__dict__["_cascade_repr"]
    except KeyError:
        text = self.__dict__["_cascade_repr"] = _record_repr(self)
        return text


def _values(self):
    stored = self._values
    return {name: stored.get(name, option.default) for name, option in self.options.items()}


def install() -> None:
    npytypes.Record.__repr__ = _cached_record_repr
    targetconfig.TargetConfig.values = _values
