"""Bad input through the command line: `vertebra find-l1`, `vertebra label-spine`, `vertebra reproduce`.

Every image and case entry of the bad-input corpus (`bad_inputs.build_corpus`) goes through both
commands (in-process through `vertebra.cli.main`, which is what the console script calls): exit code 2
(a crash exits 1), one line on standard error naming the file and the problem, and nothing left in the
``--out`` folder. The awkward-but-valid entries run to the end and write their outputs on the input's
grid. Two runs go through a real subprocess to check the exit codes the shell sees. The networks are
tiny random-init ones: this is about the input path, not about finding L1.

``pytest -s tests/test_cli_bad_input.py`` prints the table kind → message;
``scripts/bad_input_table.py`` writes it to ``results/bad_input_messages.md``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from bad_inputs import build_corpus
from vertebra import cli
from vertebra.direct import save_weights
from vertebra.errors import EXIT_BAD_INPUT
from vertebra.instance.traversal import TraversalConfig
from vertebra.instance.weights import InstanceBundle
from vertebra.models import UNet3D, UNetConfig
from vertebra.models.instance_unet import InstanceUNet, InstanceUNetConfig

COMMANDS = ("find-l1", "label-spine")
OUTPUTS = {"find-l1": ("l1_mask.nii.gz", "l1.json"), "label-spine": ("spine_mask.nii.gz", "levels.json")}


def tiny_weights(folder: Path) -> dict[str, Path]:
    """Random-init networks small enough to run on a toy scan in a second: {command: weights file}."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    direct = save_weights(UNet3D(UNetConfig(num_classes=1, features=4)), folder / "direct.pt", classes="L1",
                          shape_zyx=[32, 16, 16], run_id="tiny-random")
    bundle = InstanceBundle({"down": InstanceUNet(InstanceUNetConfig(features=4))}, 4.0,
                            TraversalConfig(patch_voxels=16, scan_stride_voxels=8), {"run_id": "tiny-random"})
    return {"find-l1": direct, "label-spine": bundle.save(folder / "instance.pt")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return [e for e in build_corpus(tmp_path_factory.mktemp("corpus")) if e.loader in ("image", "case")]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return tiny_weights(tmp_path_factory.mktemp("weights"))


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """`vertebra ARGV` in this process: (exit code, standard error)."""
    capsys.readouterr()
    code = cli.main(argv)
    return code, capsys.readouterr().err


def assert_clean_failure(code: int, err: str, path: Path, fragment: str, out: Path) -> str:
    assert code == EXIT_BAD_INPUT, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0] and fragment in lines[0], lines[0]
    assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_corpus_entry_fails_cleanly_or_runs(command, corpus, weights, tmp_path, capsys):
    table = []
    for n, entry in enumerate(corpus):
        out = tmp_path / f"out{n}"
        code, err = run_cli([command, str(entry.path), "--weights", str(weights[command]), "--out", str(out)],
                            capsys)
        if entry.expected is None:   # awkward but valid: runs, writes both files on the input's grid
            assert code == 0 and err == "", (entry.kind, code, err)
            assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS[command]), entry.kind
            mask = sitk.ReadImage(str(out / OUTPUTS[command][0]))
            ct = next(entry.path.glob("*_ct.nii.gz")) if entry.path.is_dir() else entry.path
            scan = sitk.ReadImage(str(ct))
            assert mask.GetSize() == scan.GetSize(), entry.kind
            assert np.allclose(mask.GetOrigin(), scan.GetOrigin(), atol=1e-4), entry.kind
            assert np.allclose(mask.GetDirection(), scan.GetDirection(), atol=1e-6), entry.kind
            table.append((entry.kind, "runs (exit 0)"))
            continue
        line = assert_clean_failure(code, err, entry.path, entry.expected, out)
        table.append((entry.kind, line.split(": error: ", 1)[1].replace(str(entry.path.parent) + os.sep, "")))
    assert len({k for k, m in table if m != "runs (exit 0)"}) >= 15
    with capsys.disabled():
        print(f"\nvertebra {command}: kind → message")
        for kind, message in table:
            print(f"  {kind:45s} {message}")


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_or_foreign_weights_are_bad_input(command, corpus, weights, tmp_path, capsys, monkeypatch):
    good = next(e.path for e in corpus if e.kind == "valid case (control)")
    out = tmp_path / "out"
    missing = tmp_path / "absent.pt"
    code, err = run_cli([command, str(good), "--weights", str(missing), "--out", str(out)], capsys)
    assert_clean_failure(code, err, missing, "not found", out)

    # the packaged default weights, when they have not been trained yet
    monkeypatch.setattr("vertebra.direct.DEFAULT_WEIGHTS", missing)
    monkeypatch.setattr("vertebra.instance.weights.DEFAULT_WEIGHTS", missing)
    code, err = run_cli([command, str(good), "--out", str(out)], capsys)
    assert_clean_failure(code, err, missing, "not found", out)

    other = weights["label-spine" if command == "find-l1" else "find-l1"]
    code, err = run_cli([command, str(good), "--weights", str(other), "--out", str(out)], capsys)
    assert_clean_failure(code, err, other, "is not a", out)

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"PK\x03\x04 half a zip file")
    code, err = run_cli([command, str(good), "--weights", str(junk), "--out", str(out)], capsys)
    assert_clean_failure(code, err, junk, "is not a", out)


def test_direct_weights_without_a_usable_grid_are_bad_input(corpus, tmp_path, capsys):
    good = next(e.path for e in corpus if e.kind == "valid case (control)")
    odd = save_weights(UNet3D(UNetConfig(features=4)), tmp_path / "odd.pt", classes="L1", shape_zyx=[20, 8, 8])
    code, err = run_cli(["find-l1", str(good), "--weights", str(odd), "--out", str(tmp_path / "o")], capsys)
    assert_clean_failure(code, err, odd, "shape_zyx", tmp_path / "o")


def test_two_series_can_be_chosen_on_the_command_line(corpus, weights, tmp_path, capsys):
    two = next(e.path for e in corpus if e.kind == "folder with two DICOM series")
    code, err = run_cli(["find-l1", str(two), "--series-uid", "1.2.826.0.1.3680043.2.1125.11", "--weights",
                         str(weights["find-l1"]), "--out", str(tmp_path / "o")], capsys)
    assert code == 0 and (tmp_path / "o" / "l1.json").exists(), err


def test_reproduce_rejects_unknown_rows_and_scales(capsys):
    code, err = run_cli(["reproduce", "--rows", "unet-l1-hand-99", "--no-book"], capsys)
    assert code == EXIT_BAD_INPUT and len(err.strip().splitlines()) == 1 and "unknown rows" in err, err
    with pytest.raises(SystemExit) as info:   # argparse: usage line, then the problem
        cli.main(["reproduce", "--scale", "huge", "--no-book"])
    assert info.value.code == 2 and "invalid choice: 'huge'" in capsys.readouterr().err


def test_a_crash_is_not_reported_as_bad_input(corpus, weights, tmp_path, monkeypatch):
    """Only `InputError` becomes exit code 2; anything else propagates (the interpreter exits 1)."""
    def boom(*args, **kwargs):
        raise RuntimeError("simulated bug")
    monkeypatch.setattr("vertebra.direct.find_l1", boom)
    good = next(e.path for e in corpus if e.kind == "valid case (control)")
    with pytest.raises(RuntimeError, match="simulated bug"):
        cli.main(["find-l1", str(good), "--weights", str(weights["find-l1"]), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def _shell(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=180)


def test_bad_input_exit_code_seen_by_the_shell(corpus, weights, tmp_path):
    bad = next(e for e in corpus if e.kind == "truncated gzip")
    done = _shell(["-m", "vertebra.cli", "find-l1", str(bad.path), "--weights", str(weights["find-l1"]),
                   "--out", str(tmp_path / "o")])
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"vertebra find-l1: error: {bad.path}: "), done.stderr
    assert bad.expected in lines[0] and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_crash_exit_code_seen_by_the_shell(corpus, weights, tmp_path):
    good = next(e for e in corpus if e.kind == "valid case (control)")
    crash = ("import sys; from vertebra import cli, direct\n"
             "def boom(*a, **k): raise RuntimeError('simulated bug')\n"
             "direct.find_l1 = boom\n"
             "sys.exit(cli.main(sys.argv[1:]))")
    done = _shell(["-c", crash, "find-l1", str(good.path), "--weights", str(weights["find-l1"]),
                   "--out", str(tmp_path / "o")])
    assert done.returncode == 1 and "Traceback" in done.stderr and "simulated bug" in done.stderr
    assert not (tmp_path / "o").exists()


def test_label_spine_takes_a_density_floor_or_none_and_rejects_anything_else(corpus, weights, tmp_path, capsys):
    good = next(e.path for e in corpus if e.kind == "valid case (control)")
    for value, expected in (("150", 150.0), ("none", None)):
        out = tmp_path / f"floor-{value}"
        code, err = run_cli(["label-spine", str(good), "--weights", str(weights["label-spine"]), "--out", str(out),
                             "--mask-floor-hu", value], capsys)
        assert code == 0, err
        assert json.loads((out / "levels.json").read_text(encoding="utf-8"))["mask_floor_hu"] == expected
    out = tmp_path / "floor-bad"
    code, err = run_cli(["label-spine", str(good), "--weights", str(weights["label-spine"]), "--out", str(out),
                         "--mask-floor-hu", "bone"], capsys)
    assert code == EXIT_BAD_INPUT and "--mask-floor-hu" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_label_spine_adds_the_sacrum_state_to_a_monotone_bundle_unless_told_not_to(corpus, tmp_path, capsys):
    import dataclasses

    from vertebra.instance.run import MONOTONE_ORDERING
    from vertebra.instance.weights import load_bundle
    good = next(e.path for e in corpus if e.kind == "valid case (control)")
    bundle = load_bundle(tiny_weights(tmp_path / "w")["label-spine"])
    monotone = dataclasses.replace(bundle, ordering=MONOTONE_ORDERING).save(tmp_path / "monotone.pt")
    for value, expected in (("-1", -1.0), ("none", None)):
        out = tmp_path / f"sacrum-{value}"
        code, err = run_cli(["label-spine", str(good), "--weights", str(monotone), "--out", str(out),
                             "--sacrum-log-prior", value], capsys)
        assert code == 0, err
        rule = json.loads((out / "levels.json").read_text(encoding="utf-8"))["ordering"]["rule"]
        assert rule["rule"] == "monotone" and rule.get("sacrum_log_prior") == expected
    for value in ("bone", "0.5"):
        out = tmp_path / f"sacrum-bad-{value}"
        code, err = run_cli(["label-spine", str(good), "--weights", str(monotone), "--out", str(out),
                             "--sacrum-log-prior", value], capsys)
        assert code == EXIT_BAD_INPUT and "--sacrum-log-prior" in err and len(err.strip().splitlines()) == 1
        assert not out.exists()
