"""``torchrun --nproc_per_node=N bench/torchrun_loop.py CONFIG OUT``: the training loop of
``ray_jobs.train`` under plain torch.distributed (gloo), for the Ray Train comparison."""

import json
import sys
import time

import torch.distributed as dist

from ray_jobs.train import _train


def main() -> None:
    started = time.perf_counter()
    dist.init_process_group("gloo")
    config = json.loads(open(sys.argv[1]).read())
    _, history = _train(config)
    if dist.get_rank() == 0:
        out = {"history": history, "wall_s": time.perf_counter() - started}
        open(sys.argv[2], "w").write(json.dumps(out))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
