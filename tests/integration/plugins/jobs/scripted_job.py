"""A Ray job whose behaviour the test chooses: print lines, wait for a file, fail, write a result.

Every start appends to ``--starts`` so a test can count how many times the job really ran.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from ray_jobs.contract import write_result

parser = argparse.ArgumentParser()
parser.add_argument("--lines", type=int, default=0)
parser.add_argument("--wait-for", default=None, help="block until this file exists")
parser.add_argument("--fail", default=None, help="raise with this text")
parser.add_argument("--error", default=None, help="before failing, write it as the result's error")
parser.add_argument("--result", default="{}", help="JSON result to write")
parser.add_argument("--starts", default=None, help="file to append one line to per start")
args = parser.parse_args()

if args.starts:
    with open(args.starts, "a") as fh:
        fh.write("started\n")
for i in range(args.lines):
    print(f"scripted line {i}", flush=True)
if args.wait_for:
    while not Path(args.wait_for).exists():
        print("waiting", flush=True)
        time.sleep(0.5)
if args.fail:
    if args.error:
        write_result({"error": args.error})
    print(f"about to fail: {args.fail}", file=sys.stderr, flush=True)
    raise RuntimeError(args.fail)
write_result(json.loads(args.result))
print("scripted job done", flush=True)
