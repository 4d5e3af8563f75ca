"""Build the C matching core as the cffi module ``vmsched._vmsched_core`` (API mode, out of line).

``setup.py`` uses ``ffibuilder`` through ``cffi_modules``. Run directly, this script builds
the module in place for development (so tests run from the source tree)::

    python csrc/build_core.py                 # -> vmsched/_vmsched_core.*.so
    python csrc/build_core.py --sanitize DIR  # ASan+UBSan build -> DIR/vmsched/_vmsched_core.*.so

The cdef is the part of ``csrc/vmsched_core.h`` between ``CDEF-BEGIN`` and ``CDEF-END``, so
the header stays the one description of the API.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODULE = "vmsched._vmsched_core"
SOURCES = ["core.c", "index.c", "match.c", "reasons.c", "preempt.c"]
CFLAGS = ["-O2", "-Wall", "-Wextra", "-ffp-contract=off", "-std=c11"]
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                  "-fno-sanitize-recover=undefined", "-g"]


def _cdef() -> str:
    with open(os.path.join(HERE, "vmsched_core.h"), encoding="utf-8") as f:
        header = f.read()
    m = re.search(r"/\* CDEF-BEGIN[^\n]*\*/\n(.*?)/\* CDEF-END \*/", header, re.S)
    if m is None:
        raise RuntimeError("csrc/vmsched_core.h lacks the CDEF-BEGIN/CDEF-END markers")
    return m.group(1)


def _rel(path: str) -> str:
    # setuptools wants source paths relative to the project root, the cwd it runs us in
    return os.path.relpath(path) if os.path.abspath(os.getcwd()) == ROOT else path


def make_builder(extra_cflags: list[str] = (), extra_ldflags: list[str] = (),
                 absolute: bool = False) -> FFI:
    """absolute: source paths for a build outside the tree (cffi compiles in its tmpdir)."""
    path = os.path.abspath if absolute else _rel
    builder = FFI()
    builder.cdef(_cdef())
    builder.set_source(
        MODULE,
        # cffi's generated glue trips -Wextra's unused-parameter; our own sources do not
        '#pragma GCC diagnostic ignored "-Wunused-parameter"\n#include "vmsched_core.h"\n',
        sources=[path(os.path.join(HERE, s)) for s in SOURCES],
        include_dirs=[path(HERE)],
        extra_compile_args=CFLAGS + list(extra_cflags),
        extra_link_args=list(extra_ldflags),
        libraries=["m"],
    )
    return builder


ffibuilder = make_builder()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sanitize", metavar="DIR",
                    help="build with AddressSanitizer and UBSan into DIR instead of in place")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    if args.sanitize:
        out = os.path.abspath(args.sanitize)
        builder = make_builder(SANITIZE_FLAGS, ["-fsanitize=address,undefined"], absolute=True)
    else:
        out = ROOT
        builder = ffibuilder
    os.makedirs(out, exist_ok=True)
    path = builder.compile(tmpdir=out, verbose=args.verbose)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
