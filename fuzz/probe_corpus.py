#!/usr/bin/env python3
"""Bit-flip and truncation corpus for the HDF5 readers, run through nic-probe (issue 19).

  fuzz/probe_corpus.py NIC_PROBE KIND SEED_FILE... [--count N] [--seed S] [--out DIR] [--timeout T]

Writes N variants of each seed (a quarter truncated at a random length, the rest with 1-8 flipped bits,
most of them in the first 8 KiB where HDF5 keeps superblock, object headers and heaps), has
`NIC_PROBE KIND variant` read each with a T-second limit (default 5; for grid, then also
`NIC_PROBE grid-variants variant`), and keeps under DIR (default
fuzz/regressions/fuzz_latent_grid for KIND grid, fuzz_heatmap for heatmap) every variant on which the
probe died of a signal (crash-<signal>-<kind>-<sha1>.h5) or did not finish (hang-<kind>-<sha1>.h5).
Refusals (exit 1 with a message) are the expected outcome and are not kept. Prints a summary.

--anywhere flips bits uniformly over the whole file (chunk data and chunk index included) instead of
mostly in the first 8 KiB. --check-accepted reads every variant the probe accepted again with
`NIC_PROBE --read-all` (every grid value through HDF5, as the applications will read it) and counts
the ones that crash or hang there (kept as accepted-then-<outcome>-...): the probe's checks without
reading every value must leave none.
"""
import argparse
import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile


def probe_file(probe, kind, path, timeout, read_all=False):
    """The outcome of the checks an application makes before reading all of `path`: for a compressed
    slide, kind grid (metadata, variant 0, tissue, flags) and then grid-variants (the other variants)."""
    flag = ["--read-all"] if read_all else []
    outcome = run(probe, flag + [kind, path], timeout)
    if kind == "grid" and outcome == "ok":
        outcome = run(probe, flag + ["grid-variants", path], timeout)
    return outcome


def run(probe, args, timeout):
    try:
        r = subprocess.run([probe] + args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "hang"
    if r.returncode < 0:
        return "crash-" + signal.Signals(-r.returncode).name.lower()
    return "ok" if r.returncode == 0 else "refused"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("probe")
    ap.add_argument("kind", choices=["grid", "heatmap"])
    ap.add_argument("seeds", nargs="+")
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out")
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--keep", type=int, default=6, help="at most this many inputs per outcome")
    ap.add_argument("--anywhere", action="store_true", help="flip bits anywhere in the file")
    ap.add_argument("--check-accepted", action="store_true",
                    help="re-read accepted variants with --read-all; count crashes and hangs there")
    a = ap.parse_args()
    root = os.path.dirname(os.path.abspath(__file__))
    out = a.out or os.path.join(root, "regressions", "fuzz_latent_grid" if a.kind == "grid" else "fuzz_heatmap")
    os.makedirs(out, exist_ok=True)
    rng = random.Random(a.seed)
    counts = {"refused": 0, "ok": 0}
    kept = {}
    with tempfile.TemporaryDirectory() as tmp:
        cand = os.path.join(tmp, "variant.h5")
        for seed_path in a.seeds:
            data = open(seed_path, "rb").read()
            for i in range(a.count):
                b = bytearray(data)
                if i % 4 == 0:
                    b = b[: rng.randrange(1, len(b))]
                else:
                    for _ in range(rng.randint(1, 8)):
                        near = not a.anywhere and rng.random() < 0.8
                        pos = rng.randrange(min(len(b), 8192)) if near else rng.randrange(len(b))
                        b[pos] ^= 1 << rng.randrange(8)
                with open(cand, "wb") as f:
                    f.write(b)
                outcome = probe_file(a.probe, a.kind, cand, a.timeout)
                if outcome == "ok" and a.check_accepted:
                    full = probe_file(a.probe, a.kind, cand, a.timeout, read_all=True)
                    if full not in ("ok", "refused"):
                        outcome = "accepted-then-" + full
                    elif full == "refused":
                        counts["accepted, refused by --read-all"] = counts.get("accepted, refused by --read-all", 0) + 1
                counts[outcome] = counts.get(outcome, 0) + 1
                if outcome in ("ok", "refused"):
                    continue
                kept.setdefault(outcome, 0)
                if kept[outcome] >= a.keep:
                    continue
                name = "%s-%s-%s.h5" % (outcome, a.kind, hashlib.sha1(bytes(b)).hexdigest()[:12])
                with open(os.path.join(out, name), "wb") as f:
                    f.write(b)
                kept[outcome] += 1
    print("%s: %d variants: %s; kept %s in %s" % (a.kind, a.count * len(a.seeds), counts, kept, out))


if __name__ == "__main__":
    sys.exit(main())
