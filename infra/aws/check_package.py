#!/usr/bin/env python3
"""Checks the Lambda zips `make package` wrote, before anything is uploaded.

    check_package.py --max-glibc 2.34 --machine X86-64 ZIP...

For each zip: it holds an executable `bootstrap` at its root (what `provided.al2023` runs), an ELF
for the expected machine, whose symbol versions need no glibc newer than --max-glibc (Amazon Linux
2023 ships glibc 2.34: a binary linked against a newer glibc fails at start with "version
`GLIBC_2.3x' not found"). Reads the ELF with binutils' readelf (Debian package binutils).
Prints one line per zip with the sizes; exits 1 naming every problem.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

GLIBC = re.compile(r"GLIBC_(\d+(?:\.\d+)+)")
SYMBOL = re.compile(r"(\S+?)@+GLIBC_(\d+(?:\.\d+)+)")


def version(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


def readelf(*args: str) -> str:
    return subprocess.run(["readelf", "-W", *args], check=True, capture_output=True, text=True).stdout


def check(zip_path: str, max_glibc: str, machine: str) -> tuple[list[str], str]:
    """Problems of one zip, and its summary line."""
    if not os.path.isfile(zip_path):
        return [f"{zip_path}: missing (did the build produce it?)"], ""
    with zipfile.ZipFile(zip_path) as z:
        try:
            info = z.getinfo("bootstrap")
        except KeyError:
            return [f"{zip_path}: no `bootstrap` at the root of the zip"], ""
        problems = []
        mode = info.external_attr >> 16
        if mode and not mode & 0o111:
            problems.append(f"{zip_path}: bootstrap is not executable (mode {oct(mode)})")
        with tempfile.TemporaryDirectory() as tmp:
            binary = z.extract(info, tmp)
            header = readelf("-h", binary)
            m = re.search(r"Machine:\s*(.+)", header)
            if not m or machine not in m.group(1):
                problems.append(f"{zip_path}: bootstrap is built for {m.group(1).strip() if m else '?'}, not {machine}")
            needed = sorted({v for v in GLIBC.findall(readelf("-V", binary))}, key=version)
            too_new = [v for v in needed if version(v) > version(max_glibc)]
            if too_new:
                symbols = sorted({
                    f"{name}@GLIBC_{v}"
                    for name, v in SYMBOL.findall(readelf("--dyn-syms", binary))
                    if version(v) > version(max_glibc)
                })
                problems.append(
                    f"{zip_path}: needs glibc {', '.join(too_new)} > {max_glibc} (Amazon Linux 2023); "
                    f"symbols: {', '.join(symbols) or '(see readelf -V)'}"
                )
            summary = (f"{os.path.basename(os.path.dirname(zip_path)):20} zip {os.path.getsize(zip_path) / 1e6:5.1f} MB"
                       f"  bootstrap {info.file_size / 1e6:5.1f} MB  newest glibc {needed[-1] if needed else 'none'}")
    return problems, summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-glibc", default="2.34")
    ap.add_argument("--machine", default="X86-64", help="substring of readelf's Machine: line")
    ap.add_argument("zips", nargs="+")
    args = ap.parse_args()
    if shutil.which("readelf") is None:
        print("check-package: readelf not found: install binutils (apt-get install binutils)", file=sys.stderr)
        return 1
    problems = []
    for z in args.zips:
        p, summary = check(z, args.max_glibc, args.machine)
        problems += p
        if summary:
            print(summary)
    if problems:
        print("\ncheck-package: FAILED, these zips must not be deployed:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"check-package: {len(args.zips)} zip(s) ok: executable bootstrap, {args.machine}, glibc <= {args.max_glibc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
