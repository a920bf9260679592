#!/usr/bin/env python
"""Time sealed_tree.seal() on a drifted tree of regular files (needs root).

Three cases on 50 directories of 100 files each: files root-owned with mode 0644 (repaired
with fchmod), files writable by others (mode 0666: replaced by a fresh copy, each fsynced
before its rename) and a tree that is already sealed (a check only). Median of --runs.

Run from a tree where this collection sits at ansible_collections/hardened/openresty:

    PYTHONPATH=<dir holding ansible_collections> python scripts/bench_seal.py --runs 5
"""
from __future__ import absolute_import, division, print_function

import argparse
import os
import shutil
import statistics
import tempfile
import time

from ansible_collections.hardened.openresty.plugins.module_utils import sealed_tree


def make_tree(base, mode, dirs=50, files=100):
    root = tempfile.mkdtemp(dir=base)
    for i in range(dirs):
        sub = os.path.join(root, "d%02d" % i)
        os.mkdir(sub)
        for j in range(files):
            path = os.path.join(sub, "f%03d.lua" % j)
            with open(path, "w") as handle:
                handle.write("return {}\n")
            os.chmod(path, mode)
    return root


def timed(fn):
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("sealing changes ownership: run as root")
    base = tempfile.mkdtemp(prefix="bench-seal-")
    results = {"repair (0644 -> 0444)": [], "replace (0666, new inodes)": [], "sealed (check only)": []}
    try:
        for dummy in range(args.runs):
            root = make_tree(base, 0o644)
            results["repair (0644 -> 0444)"].append(timed(lambda: sealed_tree.seal(root)))
            results["sealed (check only)"].append(timed(lambda: sealed_tree.seal(root)))
            shutil.rmtree(root)
            root = make_tree(base, 0o666)
            results["replace (0666, new inodes)"].append(timed(lambda: sealed_tree.seal(root)))
            shutil.rmtree(root)
    finally:
        shutil.rmtree(base)
    print("| case, 5000 files | median seconds | min-max |")
    print("|---|---:|---:|")
    for name, values in results.items():
        print("| %s | %.3f | %.3f-%.3f |" % (name, statistics.median(values), min(values), max(values)))


if __name__ == "__main__":
    main()
