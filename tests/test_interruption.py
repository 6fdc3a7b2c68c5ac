"""Interruption: a process killed with SIGKILL (no cleanup, no `finally`) loses nothing.

* Training (`vertebra.train.train`, tiny model) runs in a subprocess that is killed at a seeded random
  step, then resumes here: weights and every logged metric are bit-identical to an uninterrupted run.
  The slow variant kills a second time in the middle of writing a checkpoint or the log (leaving a
  half-written temporary file behind, which the resumed run removes).
* The reproduce runner (`vertebra.reproduce.execute`, on tiny fake notebooks as in test_reproduce.py)
  is killed by its own notebook's kernel in the middle of the second of three runs: the first run's
  executed notebook and record are complete, nothing of the second or third exists, and the next call
  skips the first and runs only the other two.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from vertebra.train import read_log_csv, train

TRAINING = textwrap.dedent('''
    """A tiny training run (model, batches, loss, validation all pure functions of the step)."""
    import os
    import signal
    import sys
    from pathlib import Path

    import torch

    torch.set_num_threads(1)  # as in the test process (conftest): results are exact per thread count

    from vertebra import train as training
    from vertebra.train import TrainConfig, step_seed

    CONFIG = TrainConfig(iterations=12, batch_size=2, learning_rate=1e-2, seed=5, checkpoint_every=3,
                         validate_every=4)


    class TinyNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv3d(1, 4, 3, padding=1)
            self.drop = torch.nn.Dropout3d(0.3)
            self.head = torch.nn.Conv3d(4, 1, 1)

        def forward(self, x):
            return self.head(self.drop(torch.relu(self.conv(x))))


    def make_model():
        torch.manual_seed(0)
        return TinyNet()


    def sample_batch(step):
        g = torch.Generator().manual_seed(step_seed(11, step))
        x = torch.randn(2, 1, 6, 6, 6, generator=g)
        return {"image": x, "target": (x > 0.5).float()}


    def loss_fn(model, batch, step):
        if step == KILL_AT_STEP:
            os.kill(os.getpid(), signal.SIGKILL)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(model(batch["image"]), batch["target"])
        return bce, {"bce": bce.item()}


    def validate(model):
        b = sample_batch(10_000)
        return {"dice_val": float(torch.sigmoid(model(b["image"])).mean())}


    KILL_AT_STEP = None


    def die_on_write(n):
        """Make the n-th atomic write of the loop leave half a temporary file and SIGKILL the process."""
        real, calls = training.write_bytes_atomic, []

        def write(path, data):
            calls.append(path)
            if len(calls) == n:
                path = Path(path)
                (path.parent / f".{path.name}.killed.tmp").write_bytes(data[: len(data) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            return real(path, data)
        training.write_bytes_atomic = write


    if __name__ == "__main__":
        run_dir, how, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
        if how == "step":
            KILL_AT_STEP = n
        else:
            die_on_write(n)
        training.train(make_model(), sample_batch, loss_fn, CONFIG, run_dir, validate=validate)
''')


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    """The training script on disk, and the same definitions imported here."""
    folder = tmp_path_factory.mktemp("worker")
    (folder / "tiny_training.py").write_text(TRAINING)
    sys.path.insert(0, str(folder))
    try:
        import tiny_training
    finally:
        sys.path.remove(str(folder))
    return folder / "tiny_training.py", tiny_training


def run_killed(script: Path, run_dir: Path, how: str, n: int) -> None:
    done = subprocess.run([sys.executable, str(script), str(run_dir), how, str(n)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-2000:])


def metrics_only(rows: list[dict]) -> list[dict]:
    """The log without its timing columns (wait_s, seconds), which differ from run to run."""
    return [{k: v for k, v in r.items() if k not in ("wait_s", "seconds")} for r in rows]


def assert_same_run(whole: torch.nn.Module, whole_dir: Path, resumed: torch.nn.Module, run_dir: Path) -> None:
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    assert metrics_only(read_log_csv(run_dir / "train_log.csv")) == metrics_only(read_log_csv(whole_dir / "train_log.csv"))
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def uninterrupted(worker, tmp_path_factory):
    _, tiny = worker
    run_dir = tmp_path_factory.mktemp("whole")
    model = tiny.make_model()
    train(model, tiny.sample_batch, tiny.loss_fn, tiny.CONFIG, run_dir, validate=tiny.validate)
    return model, run_dir


def test_training_killed_at_a_random_step_then_resumed_is_bit_identical(worker, uninterrupted, tmp_path):
    script, tiny = worker
    every = tiny.CONFIG.checkpoint_every
    kill_step = int(np.random.default_rng(7).integers(every + 1, tiny.CONFIG.iterations - 1))
    run_killed(script, tmp_path, "step", kill_step)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == kill_step // every * every

    resumed = tiny.make_model()  # fresh weights: everything must come from the checkpoint
    result = train(resumed, tiny.sample_batch, tiny.loss_fn, tiny.CONFIG, tmp_path, validate=tiny.validate)
    assert result.resumed_from_step == kill_step // every * every and result.steps_done == tiny.CONFIG.iterations
    assert_same_run(*uninterrupted, resumed, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_training_killed_twice_once_mid_write_then_resumed_is_bit_identical(worker, uninterrupted, tmp_path, seed):
    script, tiny = worker
    rng = np.random.default_rng(seed)
    every = tiny.CONFIG.checkpoint_every
    run_killed(script, tmp_path, "step", int(rng.integers(every + 1, tiny.CONFIG.iterations - 1)))
    # the second run resumes, then dies halfway through one of its checkpoint or log writes
    run_killed(script, tmp_path, "write", int(rng.integers(1, 4)))
    assert list(tmp_path.glob(".*.killed.tmp")), "the simulated half-written file is there"

    resumed = tiny.make_model()
    result = train(resumed, tiny.sample_batch, tiny.loss_fn, tiny.CONFIG, tmp_path, validate=tiny.validate)
    assert every <= result.resumed_from_step < tiny.CONFIG.iterations == result.steps_done
    assert_same_run(*uninterrupted, resumed, tmp_path)


FAKE = '''# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
scale = "smoke"
seed = 0
value = 1
results_dir = ""

# %%
import os
import signal
from pathlib import Path

switch = Path(results_dir, f"kill-runner-at-{value}")
if switch.exists():          # the runner (this kernel's parent) and the kernel die halfway through
    switch.unlink()
    os.kill(os.getppid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
Path(results_dir, f"value-{value}.txt").write_text(str(value * 2))
'''

RUNNER = '''
import sys
from pathlib import Path
from vertebra.reproduce import NotebookRun, Workspace, execute
root = Path(sys.argv[1])
ws = Workspace(root, root / "results", root / "executed", root / "results" / "reproduce", root)
for value in (1, 2, 3):
    print(execute(NotebookRun("fake", {"scale": "smoke", "seed": 0, "value": value}, run_id=f"v{value}"), ws)["status"],
          flush=True)
'''


def test_reproduce_killed_mid_run_keeps_results_consistent_and_completes_the_rest(tmp_path):
    from vertebra.reproduce import NotebookRun, Workspace, execute

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "fake.py").write_text(FAKE)
    ws = Workspace(tmp_path, tmp_path / "results", tmp_path / "executed", tmp_path / "results" / "reproduce",
                   tmp_path)
    ws.results_dir.mkdir()
    (ws.results_dir / "kill-runner-at-2").touch()
    done = subprocess.run([sys.executable, "-c", RUNNER, str(tmp_path)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert done.stdout.split() == ["ok"]

    # consistent: run 1 complete (notebook, record, result); nothing of runs 2 and 3, no temporary files
    assert sorted(p.name for p in ws.executed_dir.iterdir()) == ["fake-v1.ipynb"]
    assert sorted(p.name for p in ws.records_dir.iterdir()) == ["fake-v1.json"]
    assert json.loads((ws.records_dir / "fake-v1.json").read_text(encoding="utf-8"))["status"] == "ok"
    assert sorted(p.name for p in ws.results_dir.iterdir() if p.is_file()) == ["value-1.txt"]

    statuses = [execute(NotebookRun("fake", {"scale": "smoke", "seed": 0, "value": v}, run_id=f"v{v}"), ws)["status"]
                for v in (1, 2, 3)]
    assert statuses == ["skipped", "ok", "ok"]
    assert [(ws.results_dir / f"value-{v}.txt").read_text(encoding="utf-8") for v in (1, 2, 3)] == ["2", "4", "6"]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith((".tmp", ".part"))]
