"""Tree-build cost on three shapes of model: figures, not a pass/fail test.

For each case a fresh Python process builds the model, then the tree, and reports:
the tree build in seconds, the memory the tree adds above the model itself (peak
resident set during the build minus the resident set before it), seconds per module,
and, for the meta-device Llama, the whole time to a browsable tree (build + tree)
and the process's peak resident memory. Targets (2-core machine): 100k modules in
under 2 s and 300 MB above the model; Llama-70B on meta browsable in under 5 s and
1 GB resident.

Then the whole command against the least a script could do: ``layerscope tree`` on the
100k-module model, run as a user runs it (a fresh process, output into a pipe), next to
a fresh process that imports torch, builds the same model and counts its modules and
parameters. They alternate, so both see the same load; the figure is the median
difference. Target: under +1.5 s. layerscope pauses Python's cyclic garbage collector
while it builds a model (``layerscope.running.gcpause``), which alone takes seconds off this
build; a third script does the same, so that its difference is what the rest costs
(imports, the tree, the printing).

    python benchmarks/bench_tree.py [--repeat 3] [--cli-repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"  # big_models.py: the synthetic models

CASES = {
    "resnet50": "from layerscope.models import load_model; model = load_model('resnet50').model",
    "generated 100k modules": "from big_models import hundred_thousand; model = hundred_thousand()",
    "Llama-70B shape on meta": (
        "from layerscope.models import load_model; model = load_model('big_models:llama_70b', device='meta').model"
    ),
}

CHILD = r"""
import gc, json, sys, time
sys.path.insert(0, {tests!r})
t0 = time.perf_counter()
{build}
gc.collect()  # the model's own objects met by the collector here, not during the tree's timing
t1 = time.perf_counter()
from layerscope.tree import build_tree

def rss_kib(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1])

before = rss_kib('VmRSS:')
open('/proc/self/clear_refs', 'w').write('5')  # reset the peak (VmHWM) to the current size
t2 = time.perf_counter()
tree = build_tree(model)
t3 = time.perf_counter()
print(json.dumps({{
    'modules': len(tree), 'params': tree.root.total_params,
    'model_s': t1 - t0, 'tree_s': t3 - t2,
    'tree_mb': (rss_kib('VmHWM:') - before) / 1024, 'peak_rss_mb': rss_kib('VmHWM:') / 1024,
}}))
"""


def run_case(build: str) -> dict:
    code = CHILD.format(tests=str(TESTS), build=build)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


PLAIN = r"""
import gc, sys
sys.path.insert(0, {tests!r})
import torch
from big_models import hundred_thousand
{pause}model = hundred_thousand()
gc.enable()
print(sum(1 for _ in model.named_modules(remove_duplicate=False)), sum(p.numel() for p in model.parameters()))
"""


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return time.perf_counter() - started, out.stdout


def compare_cli(repeat: int) -> dict[str, float]:
    """Seconds of ``layerscope tree big_models:hundred_thousand`` and of a plain build-and-count,
    each in a fresh process, alternating; medians and the median of the paired differences."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    plain_cmd = [sys.executable, "-c", PLAIN.format(tests=str(TESTS), pause="")]
    paused_cmd = [sys.executable, "-c", PLAIN.format(tests=str(TESTS), pause="gc.disable()\n")]
    tree_cmd = [sys.executable, "-m", "layerscope", "tree", "big_models:hundred_thousand"]
    plain, paused, tree = [], [], []
    for _ in range(repeat):
        for command, times in ((plain_cmd, plain), (paused_cmd, paused)):
            seconds, out = timed(command, env)
            assert out.split() == ["100004", "220009"], out
            times.append(seconds)
        seconds, out = timed(tree_cmd, env)
        assert "220,009 parameters" in out and "100004 modules" in out, out
        tree.append(seconds)
    return {
        "plain": statistics.median(plain),
        "paused": statistics.median(paused),
        "tree": statistics.median(tree),
        "extra": statistics.median(t - p for t, p in zip(tree, plain)),
        "extra_paused": statistics.median(t - p for t, p in zip(tree, paused)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the fastest tree build is shown")
    parser.add_argument("--cli-repeat", type=int, default=5, help="pairs of runs of the command and the plain script")
    args = parser.parse_args()
    print(
        f"{'case':26} {'modules':>8} {'parameters':>16} {'tree s':>7} {'µs/module':>10} "
        f"{'tree MB':>8} {'model+tree s':>13} {'peak RSS MB':>12}"
    )
    for name, build in CASES.items():
        runs = [run_case(build) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["tree_s"])
        print(
            f"{name:26} {best['modules']:>8,} {best['params']:>16,} {best['tree_s']:>7.3f} "
            f"{1e6 * best['tree_s'] / best['modules']:>10.1f} {best['tree_mb']:>8.1f} "
            f"{best['model_s'] + best['tree_s']:>13.2f} {best['peak_rss_mb']:>12.0f}"
        )
    cli = compare_cli(args.cli_repeat)
    print(f"\n100k modules, fresh processes, medians of {args.cli_repeat} alternating rounds:")
    print(f"  import torch + build + count modules and parameters     {cli['plain']:6.2f} s")
    print(f"  the same, the collector paused during the build          {cli['paused']:6.2f} s")
    print(
        f"  layerscope tree big_models:hundred_thousand | cat        {cli['tree']:6.2f} s  "
        f"({cli['extra']:+.2f} s over the first; target under +1.5 s; {cli['extra_paused']:+.2f} s over the second)"
    )
    return 0 if cli["extra"] < 1.5 else 1


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"(total {time.perf_counter() - started:.0f} s)")
    raise SystemExit(code)
