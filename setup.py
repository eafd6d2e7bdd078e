"""Optional mypyc build of the ingest hot path; all metadata lives in pyproject.toml.

The modules in COMPILED_SETS are compiled with mypyc when it and a C compiler are available,
which roughly doubles the RTMP chunk parser's throughput. The .py files stay the single
source of truth: if mypyc is missing, compilation fails, or GOLIVE_NO_MYPYC=1 is set, the
install goes on with the pure-Python modules and prints a warning.

mypyc names a module after its file path, so the sources are compiled from a staging copy
laid out by import name (build/mypyc-src/golive/ingest/chunk.py -> golive.ingest.chunk).
The extensions are named `golive.ingest.*`; setuptools places them through the
package-dir mapping (in an editable install, next to the .py in ingest/).
"""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import sys
import traceback

from setuptools import setup
from setuptools.command.build_ext import build_ext

# Source files to compile, relative to the project root, best first: if mypyc cannot compile
# a set (say a new type error in connection.py), the next one is tried. The Makefile's
# $(STAMP) target must depend on every file listed here.
COMPILED_SETS = [
    ["ingest/chunk.py", "ingest/timestamps.py", "ingest/flv.py", "ingest/connection.py"],
    ["ingest/chunk.py", "ingest/timestamps.py", "ingest/connection.py"],
    ["ingest/chunk.py"],
]
# Packages whose .py files are staged so that mypy can resolve the compiled modules' imports.
STAGED_PACKAGES = {"golive": "golive", "golive.ingest": "ingest"}
# The mypyc runtime shared by the compiled modules; kept inside the package so the name
# cannot collide with another distribution's in site-packages.
GROUP_NAME = "golive.ingest._native"
STAGING = os.path.join("build", "mypyc-src")
TARGET = os.path.join("build", "mypyc")


def _warn(message: str) -> None:
    bar = "*" * 78
    print(f"\n{bar}\nWARNING (golive): {message}\n{bar}\n", file=sys.stderr, flush=True)


def _stage(compiled: list[str]) -> list[str]:
    """Copy the staged packages under STAGING by import name; return the staged `compiled`."""
    by_dir = {src: pkg for pkg, src in STAGED_PACKAGES.items()}
    for pkg, src in STAGED_PACKAGES.items():
        dest = os.path.join(STAGING, *pkg.split("."))
        os.makedirs(dest, exist_ok=True)
        for name in os.listdir(src):
            if name.endswith(".py"):
                # copy2 keeps mtimes, so mypy's cache and setuptools' dependency checks
                # see a change exactly when the source changed.
                shutil.copy2(os.path.join(src, name), os.path.join(dest, name))
    staged = []
    for path in compiled:
        folder, name = os.path.split(path)
        staged.append(os.path.join(STAGING, *by_dir[folder].split("."), name))
    return staged


def _clean_in_tree(keep: set[str]) -> None:
    """Remove compiled modules from the source folders unless their name is in `keep`.

    An editable install builds them next to the .py files, where a stale one would shadow
    the source: after a failed or disabled build, or once a module leaves COMPILED.
    """
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for pkg, src in STAGED_PACKAGES.items():
        for name in os.listdir(src):
            if not name.endswith(suffixes):
                continue
            stem = name.split(".", 1)[0]
            ours = os.path.exists(os.path.join(src, stem + ".py")) or stem.endswith("__mypyc")
            if ours and f"{pkg}.{stem}" not in keep:
                os.remove(os.path.join(src, name))
                print(f"golive: removed stale {os.path.join(src, name)}", file=sys.stderr)


def _metadata_only() -> bool:
    """True for setup.py runs that only write metadata (pip runs those before the build)."""
    commands = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
    return bool(commands) and commands[0] in {"egg_info", "dist_info", "sdist"} and not (
        {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}
        & set(commands)
    )


def _extensions() -> list:
    if _metadata_only():  # no need to run mypy for those
        return []
    if os.environ.get("GOLIVE_NO_MYPYC", "") not in ("", "0"):
        print("golive: GOLIVE_NO_MYPYC is set; not compiling with mypyc", file=sys.stderr)
        _clean_in_tree(set())
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as e:
        _warn(f"mypyc is not available ({e}); installing the pure-Python modules.")
        _clean_in_tree(set())
        return []
    for compiled in COMPILED_SETS:
        try:
            return mypycify(
                [
                    "--ignore-missing-imports",  # numpy may be absent from the build env
                    "--follow-imports=silent",  # only the compiled modules must type-check
                    f"--cache-dir={os.path.join(TARGET, '.mypy_cache')}",
                    *_stage(compiled),
                ],
                opt_level="3",
                group_name=GROUP_NAME,
                target_dir=TARGET,
            )
        except (Exception, SystemExit):  # mypy exits on type errors
            traceback.print_exc()
            _warn(f"mypyc could not compile {', '.join(compiled)} (errors in "
                  "build/mypyc-src/golive/ingest/*.py are in the same lines of ingest/*.py).")
    _warn("nothing could be compiled; installing the pure-Python modules.")
    _clean_in_tree(set())
    return []


class OptionalBuildExt(build_ext):
    """Builds the mypyc extensions if it can; never fails the install because of them.

    The extensions are all or nothing: a module shim without its group library would not
    import, so after any failure every built file is removed and none is installed.
    """

    def run(self) -> None:
        _clean_in_tree({ext.name for ext in self.extensions})
        try:
            super().run()
        except Exception:  # compiler missing or failing, headers missing, ...
            traceback.print_exc()
            for ext in self.extensions:
                path = self.get_ext_fullpath(ext.name)
                if os.path.exists(path):
                    os.remove(path)
            self.extensions = []
            self.distribution.ext_modules = []
            _clean_in_tree(set())
            _warn("the mypyc-generated C code could not be compiled; installing the pure-Python "
                  "modules.")


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
