"""Internal kernels compile to linkable LLVM IR only: machine code is made once, in the loop.

numba builds a library per compiled function, links the IR of every callee into it, then runs
LLVM's whole-module optimisation and generates machine code for the result. A kernel the loop
reaches through a chain of ten callers was therefore optimised and compiled to machine code ten
times and more, once inside each caller's library, though only the loop's copy ever runs; on a
cold start that was about half of all LLVM time.

A kernel that only compiled code calls (`@kernel` without `python=True`) gets a `LinkOnlyLibrary`
instead: its own functions still get numba's per-function optimisation, and its callees are
linked in so that its IR stays self-contained for the cache, but the whole-module passes and the
machine code are left to the library that finally runs the code (the strategy loop, or a
Python-called kernel), whose optimiser sees all of it at once anyway.

numba still asks every library for machine code at two points: a pointer to the CPython wrapper
(there is none here: 0) and the address of each function's environment, a global it fills in
when it makes or loads the function. The library therefore compiles a stub module that defines
just those globals. The stub's object code is what numba's cache stores as the library's machine
code, next to the IR it links into callers, so a library loaded from the cache works unchanged.

A `cold` kernel (jit.kernel: a liquidation, a funding payment) has its functions marked
`noinline`: LLVM keeps it out of line in the loop instead of inlining it into a rarely taken
branch, where it crowded the per-event path's registers (the reference loop on the lean kernels,
core/rare.py: 203 -> 225 M events/s, the kernels with every path 223 -> 231).

A `hot` kernel (an order's work at each event of its symbol) is marked `alwaysinline`: LLVM
inlines it into its callers, so passing the state `c` by value costs nothing at run time. numba's
own inlining (`inline="always"`) did the same at the level of numba's IR, by copying and
re-typing the callee's IR inside each caller: 1.1 s more of a cold start's CPU (12.70 against
11.58 s, medians of 5 alternated pairs; the loops' speed and results unchanged).
"""
import weakref

import llvmlite.binding as ll
from llvmlite import ir
from numba.core.codegen import JITCodeLibrary
from numba.core.compiler import Compiler
from numba.core.compiler_lock import require_global_compiler_lock

_ENV_PREFIX = "_ZN08NumbaEnv"  # numba's mangled names of function environments
_VOIDPTR = ir.IntType(8).as_pointer()


class LinkOnlyLibrary(JITCodeLibrary):
    inline = None  # "noinline" (a cold kernel) or "alwaysinline" (a hot one), from LinkOnlyCompiler

    def finalize(self):
        require_global_compiler_lock()
        self._raise_if_finalized()
        if self.inline:  # only this library's own functions: its callees are linked in below
            for fn in self._final_module.functions:
                if not fn.is_declaration:
                    fn.add_function_attribute(self.inline)
        for library in dict.fromkeys(self._linking_libraries):  # as numba's finalize()
            self._reload_init.update(library._reload_init)
            self._final_module.link_in(library._get_module_for_linking(), preserve=True)
        self._final_module.verify()
        self._finalize_dynamic_globals()
        self._verify_declare_only_symbols()
        stub = self._env_stub()
        # numba's object-code hook (JITCodeLibrary) keeps the stub's machine code for the cache
        stub._CPUCodeLibrary__library = weakref.proxy(self)
        self._codegen._add_module(stub)
        self._finalize_specific()
        self._finalized = True

    def _env_stub(self) -> ll.ModuleRef:
        module = ir.Module(name=f"{self.name}.env")
        module.triple = self._final_module.triple
        module.data_layout = str(self._final_module.data_layout)
        for gv in self._final_module.global_variables:
            if gv.name.startswith(_ENV_PREFIX) and not gv.is_declaration:
                env = ir.GlobalVariable(module, _VOIDPTR, name=gv.name)
                env.linkage = "common"  # as numba declares them (BaseContext.declare_env_global)
                env.initializer = ir.Constant(_VOIDPTR, None)
        return ll.parse_assembly(str(module))


class LinkOnlyCompiler(Compiler):
    """numba's standard pipeline, with a LinkOnlyLibrary to lower into."""

    def compile_extra(self, func):
        if self.state.library is None:
            library = LinkOnlyLibrary(self.state.targetctx.codegen(), func.__qualname__)
            library.enable_object_caching()
            library.inline = getattr(func, "_cascade_inline", None)
            self.state.library = library
        return super().compile_extra(func)
