# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the Lambda deployment package, byte for byte the same for the same sources.

amazon.aws.lambda redeploys whenever the local zip's SHA-256 differs from the function's
CodeSha256, so any timestamp, permission or ordering that leaks into the zip would make every run
"changed".  Entries are therefore sorted, dated 1980-01-01, mode 0644, and stored uncompressed: a
different zlib on another controller (CI, a colleague's laptop) would otherwise produce other bytes
for the same code and redeploy it.  The package is a few kilobytes, far below Lambda's limits.

Stdlib only; runs on the controller's Python.  Prints one JSON object:
``{"path", "code_sha256" (base64, as Lambda reports it), "size", "files", "written"}``.

    python lambda_zip.py --output build/package.zip lambda/*.py plugins/module_utils/_lambda_shared/[!_]*.py

The shared files (``plugins/module_utils/_lambda_shared/``: the mapping record and the IAM reads, standard
library only) land at the zip root next to the Lambda's own, where they import each other by bare name.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import pathlib
import sys
import tempfile
import zipfile

FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
# Regular file, rw-r--r--: the Lambda runtime only needs to read the sources.
FILE_ATTRIBUTES = (0o100000 | 0o644) << 16
UNIX = 3


class PackageError(ValueError):
    """The sources cannot form one flat package."""


def entries(sources) -> dict:
    """Archive name -> bytes; every source lands at the zip root under its own file name."""
    by_name = {}
    for source in sources:
        path = pathlib.Path(source)
        if path.name in by_name and by_name[path.name][0] != path.resolve():
            raise PackageError(f"two sources would both be {path.name} at the package root: {by_name[path.name][0]} and {path}")
        by_name[path.name] = (path.resolve(), path.read_bytes())
    return {name: data for name, (_path, data) in by_name.items()}


def build(contents: dict) -> bytes:
    """The zip of ``entries()``: same contents, same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in sorted(contents.items()):
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
            info.external_attr = FILE_ATTRIBUTES
            info.create_system = UNIX
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, data)
    return buffer.getvalue()


def code_sha256(data: bytes) -> str:
    """The digest the way Lambda's GetFunction reports CodeSha256."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def write_if_different(path: pathlib.Path, data: bytes) -> bool:
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomic: a concurrent run never uploads a half-written package.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, type=pathlib.Path)
    parser.add_argument("sources", nargs="+")
    args = parser.parse_args(argv)
    try:
        contents = entries(args.sources)
    except (OSError, PackageError) as error:
        sys.stderr.write(f"cannot build the Lambda package: {error}\n")
        return 1
    data = build(contents)
    written = write_if_different(args.output, data)
    json.dump(
        {
            "path": str(args.output.resolve()),
            "code_sha256": code_sha256(data),
            "size": len(data),
            "files": sorted(contents),
            "written": written,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
