#!/usr/bin/env python3
"""Mutation check for the simulator: does the seed budget catch one-line bugs in the core?

Applies each mutation of sim/mutants/mutations.txt, one at a time, to a copy of the
repository, builds the simulator against it and runs a fixed seed budget (CI's by default).
A mutation is caught when the budget fails. Run by hand (about a minute per mutation on two
cores); record the figure in ARCHITECTURE.md's simulation section.

    python3 sim/mutants/run.py [--seeds 500] [--steps 5000] [--only NAME,...]

mutations.txt holds blocks:

    ## name: what the bug is
    file: core/src/...
    find: exact text (one line; must occur exactly once in the file)
    replace: the buggy text

`\\n` in find/replace stands for a newline.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.environ.get("MUTANTS_DIR", "/tmp/warren-mutants")


def parse(path):
    muts, cur = [], None
    for raw in open(path, encoding="utf-8"):
        line = raw.rstrip("\n")
        if line.startswith("## "):
            name, _, what = line[3:].partition(":")
            cur = {"name": name.strip(), "what": what.strip()}
            muts.append(cur)
        elif cur is not None and ": " in line and line.split(": ", 1)[0] in ("file", "find", "replace"):
            key, value = line.split(": ", 1)
            cur[key] = value.replace("\\n", "\n")
    for m in muts:
        for key in ("file", "find", "replace"):
            if key not in m:
                sys.exit(f"mutation {m['name']}: no {key}")
    return muts


def copy_repo():
    src = os.path.join(WORK, "src")
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split("\n")
    for f in files:
        if not f:
            continue
        dst = os.path.join(src, f)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, f), dst)
    return src


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=500)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    muts = parse(os.path.join(ROOT, "sim", "mutants", "mutations.txt"))
    if a.only:
        keep = set(a.only.split(","))
        muts = [m for m in muts if m["name"] in keep]
    src = copy_repo()
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(WORK, "target"))
    sim = os.path.join(WORK, "target", "release", "warren-sim")
    results = []
    for m in muts:
        path = os.path.join(src, m["file"])
        original = open(path, encoding="utf-8").read()
        hits = original.count(m["find"])
        if hits != 1:
            results.append((m, f"STALE (find text occurs {hits} times)"))
            print(f"{m['name']}: stale, find text occurs {hits} times", flush=True)
            continue
        open(path, "w", encoding="utf-8").write(original.replace(m["find"], m["replace"]))
        try:
            build = subprocess.run(["cargo", "build", "-q", "--release", "-p", "warren-sim"],
                                   cwd=src, env=env, capture_output=True, text=True)
            if build.returncode != 0:
                verdict = "DOES NOT BUILD"
            else:
                t = time.time()
                run = subprocess.run([sim, "run", "--seeds", str(a.seeds), "--steps", str(a.steps)],
                                     cwd=src, capture_output=True, text=True)
                first = next((l for l in (run.stdout + run.stderr).splitlines()
                              if l.startswith("FAILED")), "")
                verdict = (f"caught ({time.time() - t:.0f} s): {first[:160]}" if run.returncode != 0
                           else f"MISSED ({time.time() - t:.0f} s)")
        finally:
            open(path, "w", encoding="utf-8").write(original)
        results.append((m, verdict))
        print(f"{m['name']}: {verdict}", flush=True)
    caught = sum(1 for _, v in results if v.startswith("caught"))
    print(f"\n{caught} of {len(results)} mutations caught with {a.seeds} seeds x {a.steps} steps")
    for m, v in results:
        if not v.startswith("caught"):
            print(f"  not caught: {m['name']} ({m['what']}): {v}")
    sys.exit(0 if caught == len(results) else 1)


if __name__ == "__main__":
    main()
