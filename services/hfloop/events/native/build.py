"""Compile ``_avroenc.c`` into an extension module next to it (stdlib only).

The hatch build hook (``hatch_build.py``) runs this for every install, editable or not, so
``make install`` on a fresh clone builds it; by hand: ``python -m hfloop.events.native.build``
(or ``python services/hfloop/events/native/build.py``) after editing the C source. It needs
a C compiler and the Python headers; it fails loudly without them rather than installing an
SDK that is 10x slower than documented.

The source's SHA-256 is compiled into the module, so the loader can refuse a module built
from an older source (an editable install does not rebuild when the C file changes).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "_avroenc.c"
MODULE = "_avroenc"


def source_hash(source: Path = SOURCE) -> str:
    return hashlib.sha256(source.read_bytes()).hexdigest()[:16]


def target(directory: Path = HERE) -> Path:
    return directory / f"{MODULE}{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"


def compile_extension(out: Path | None = None, source: Path = SOURCE, verbose: bool = False) -> Path:
    """Build the extension at ``out`` (default: next to the source); returns its path."""
    out = out or target(source.parent)
    # The interpreter's own compiler and flags, as setuptools would use (-fPIC, -pthread, ...).
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    ccshared = shlex.split(sysconfig.get_config_var("CCSHARED") or "-fPIC")
    include = sysconfig.get_paths()["include"]
    tmp = out.with_suffix(out.suffix + ".tmp")
    cmd = [
        *cc, *ccshared, "-shared", "-O2", "-std=c11", "-Wall", "-Werror", "-fvisibility=hidden",
        f"-I{include}", f'-DHFLOOP_SOURCE_HASH="{source_hash(source)}"',
        str(source), "-o", str(tmp),
    ]  # fmt: skip
    if verbose:
        print(" ".join(shlex.quote(c) for c in cmd), file=sys.stderr)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise RuntimeError(
            f"hfloop's native Avro encoder needs a C compiler ({cc[0]} not found): install gcc "
            "(apt-get install build-essential) and reinstall"
        ) from exc
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"compiling {source.name} failed:\n{proc.stdout}{proc.stderr}")
    os.replace(tmp, out)  # atomic: a running process never sees a half-written module
    return out


if __name__ == "__main__":
    print(compile_extension(verbose=True))
