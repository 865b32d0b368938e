"""Compile once, reuse: the compiled programs of the training helpers, kept by recipe.

``jopt.adam(1e-3)`` called twice returns two transformations whose functions are
different Python objects, so ``jax.jit`` would trace and compile the same step twice.
Here a program is kept under a *fingerprint* of what it closes over: for a Python
function, its code object and, recursively, its defaults, the contents of its
closure cells and the values of the module globals its code reads.  Two optimizers
built the same way (same factory, same hyperparameters) have equal fingerprints, so
a second [`fit`][jopt.training.fit] with the same shapes reuses the first one's
executable, with no tracing and no compilation.

What is compared, and how:

* numbers, strings, ``None`` and dtypes by value (floats by their exact bits);
* tuples, lists, dicts, ``functools.partial`` and functions structurally;
* NumPy arrays by dtype, shape and content (they can be changed in place);
* JAX arrays of up to ``SMALL`` elements by value, larger ones by identity
  (they are immutable, so the same object always holds the same values);
* modules, classes and every other object by identity (the key keeps it alive, so
  its ``id`` is never reused while the entry exists).

As with ``jax.jit``, what a loss function reads is baked into the compiled program
when it is traced; the fingerprint makes rebinding a global or building a new
optimizer a new program, never a stale one.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import threading
import time
import types
from collections.abc import Callable, Hashable
from typing import Any

import jax
import numpy as np

SMALL = 64
"""JAX arrays with at most this many elements are compared by value."""

MAX_ENTRIES = 64
"""Programs kept; the least recently used goes first."""

_SCALARS = (type(None), bool, int, str, bytes, type(Ellipsis))


class Unfingerprintable(Exception):
    """Raised for a value that cannot be keyed safely (a tracer): do not cache."""


class _Identity:
    """An object compared by identity; holding it keeps its ``id`` from being reused."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any):
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.obj is self.obj


def fingerprint(obj: Any) -> Hashable:
    """A hashable key equal for two values built the same way (see the module doc).

    Raises:
        Unfingerprintable: ``obj`` holds a tracer.
    """
    return _Fingerprinter().key(obj)


# Library code does not rebind its module globals: the globals of functions defined in
# these packages are not read (their closures and defaults still are).
LIBRARIES = frozenset({"jax", "jaxlib", "jopt", "numpy", "optax", "flax", "chex", "equinox"})


class _Fingerprinter:
    def __init__(self):
        self.active: dict[int, int] = {}  # id -> position, for cycles
        self.done: dict[int, Hashable] = {}  # id -> key, for objects seen twice

    def key(self, obj: Any) -> Hashable:
        if isinstance(obj, _SCALARS):
            return (type(obj), obj)
        if isinstance(obj, float):
            return (float, obj.hex())
        if isinstance(obj, complex):
            return (complex, obj.real.hex(), obj.imag.hex())
        if isinstance(obj, (np.dtype, type, types.ModuleType, types.BuiltinFunctionType)):
            return _Identity(obj)
        if isinstance(obj, (np.ndarray, np.generic)):
            return _numpy_key(obj)
        if isinstance(obj, jax.core.Tracer):
            raise Unfingerprintable("a tracer")
        if isinstance(obj, jax.Array):
            return _jax_key(obj)
        if id(obj) in self.done:
            return self.done[id(obj)]
        if id(obj) in self.active:
            return ("cycle", self.active[id(obj)])
        self.active[id(obj)] = len(self.active)
        try:
            key = self.done[id(obj)] = self._composite(obj)
        finally:
            del self.active[id(obj)]
        return key

    def _composite(self, obj: Any) -> Hashable:
        if isinstance(obj, (tuple, list)):
            return (type(obj), tuple(self.key(item) for item in obj))
        if isinstance(obj, dict):
            return (type(obj), tuple((self.key(k), self.key(v)) for k, v in obj.items()))
        if isinstance(obj, functools.partial):
            parts = (obj.func, obj.args, obj.keywords)
            return (functools.partial, *(self.key(part) for part in parts))
        if isinstance(obj, types.MethodType):
            return (types.MethodType, self.key(obj.__func__), self.key(obj.__self__))
        if isinstance(obj, types.FunctionType):
            return self._function(obj)
        if _is_frozen_dataclass(obj):
            fields = dataclasses.fields(obj)
            return (type(obj), tuple((f.name, self.key(getattr(obj, f.name))) for f in fields))
        if (
            isinstance(getattr(obj, "recipe", None), tuple)
            and type(obj).__module__ == "jopt._block"
        ):
            # A block: the same state type, rule and fields build the same program.
            return (type(obj), self.key(obj.recipe))
        if isinstance(obj, jax.tree_util.PyTreeDef):
            return (jax.tree_util.PyTreeDef, obj)
        if type(obj).__name__ == "PjitFunction" and hasattr(obj, "_jit_info"):
            # A jitted function: its Python function and its options (not where it was
            # defined, which jit records for messages).
            info = obj._jit_info._replace(fun_sourceinfo=None, fun_signature=None)
            return ("jit", self.key(obj._fun), self.key(tuple(info)))
        return _Identity(obj)

    def _function(self, fn: types.FunctionType) -> Hashable:
        cells = []
        for cell in fn.__closure__ or ():
            try:
                cells.append(self.key(cell.cell_contents))
            except ValueError:  # an empty cell (a name assigned later)
                cells.append(("empty",))
        read = ()
        if str(getattr(fn, "__module__", None)).split(".", 1)[0] not in LIBRARIES:
            scope = fn.__globals__
            names = _global_names(fn.__code__)
            read = tuple((name, self.key(scope[name])) for name in names if name in scope)
        return (
            types.FunctionType,
            fn.__code__,
            self.key(fn.__defaults__),
            self.key(fn.__kwdefaults__),
            tuple(cells),
            read,
        )


@functools.lru_cache(maxsize=4096)
def _is_frozen_dataclass(obj: Any) -> bool:
    params = getattr(type(obj), "__dataclass_params__", None)
    return params is not None and params.frozen and not isinstance(obj, type)


@functools.lru_cache(maxsize=4096)
def _global_names(code: types.CodeType) -> tuple[str, ...]:
    """The names ``code`` and the functions defined in it may read as globals."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.update(_global_names(const))
    return tuple(sorted(names))


def _numpy_key(array: np.ndarray | np.generic) -> Hashable:
    array = np.asarray(array)
    if array.dtype == object:
        return _Identity(array)
    digest = hashlib.blake2b(np.ascontiguousarray(array).view(np.uint8), digest_size=16)
    return (np.ndarray, array.dtype.str, array.shape, digest.digest())


def _jax_key(array: jax.Array) -> Hashable:
    if array.size <= SMALL and not jax.dtypes.issubdtype(array.dtype, jax.dtypes.prng_key):
        return ("small jax.Array", _numpy_key(np.asarray(array)))
    return _Identity(array)


# --- the programs ----------------------------------------------------------------------


class Program:
    """A jitted function and its executables, one per signature of its arguments.

    ``program(signature, *args)`` runs the executable for ``signature`` (a hashable
    description of the arguments' shapes, see ``signature``), compiling it ahead
    of its first call and adding the seconds spent to ``compile_time``.
    """

    def __init__(self, jitted: Callable):
        self.jitted = jitted
        self.executables: dict[Hashable, Any] = {}
        self.compile_time = 0.0
        self._lock = threading.Lock()

    def executable(self, signature: Hashable, *args: Any) -> tuple[Any, float]:
        """The executable for ``signature`` and the seconds it took to compile now."""
        found = self.executables.get(signature)
        if found is not None:
            return found, 0.0
        with self._lock:
            found = self.executables.get(signature)
            if found is not None:
                return found, 0.0
            start = time.perf_counter()
            found = self.jitted.lower(*args).compile()
            seconds = time.perf_counter() - start
            self.executables[signature] = found
            self.compile_time += seconds
            return found, seconds


def signature(*trees: Any) -> Hashable:
    """The structure, shapes, dtypes and weak types of ``trees``: what jit keys on."""
    leaves, treedef = jax.tree.flatten(trees)
    return (
        treedef,
        tuple(
            (np.shape(leaf), str(getattr(leaf, "dtype", type(leaf))), _weak(leaf))
            for leaf in leaves
        ),
    )


def _weak(leaf: Any) -> bool:
    return bool(getattr(leaf, "weak_type", False)) or isinstance(leaf, (int, float, complex))


_PROGRAMS: collections.OrderedDict[Hashable, Program] = collections.OrderedDict()
_PROGRAMS_LOCK = threading.Lock()


def program(make: Callable[[], Callable], *recipe: Any) -> Program:
    """The ``Program`` kept for ``recipe``, or a new one from ``make()``.

    ``recipe`` is everything the function ``make`` returns closes over (the loss,
    the optimizer, static options); it is fingerprinted.  When it cannot be (it
    holds a tracer), the program is built afresh and not kept.
    """
    try:
        key = fingerprint(recipe)
        hash(key)
    except (Unfingerprintable, TypeError):
        return Program(make())
    with _PROGRAMS_LOCK:
        found = _PROGRAMS.get(key)
        if found is not None:
            _PROGRAMS.move_to_end(key)
            return found
        found = _PROGRAMS[key] = Program(make())
        while len(_PROGRAMS) > MAX_ENTRIES:
            _PROGRAMS.popitem(last=False)
        return found


def clear() -> None:
    """Forget every kept program (their executables are freed with them)."""
    with _PROGRAMS_LOCK:
        _PROGRAMS.clear()
