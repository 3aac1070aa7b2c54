"""``jinvert reproduce`` under JAX's distributed runtime: two local CPU
processes give the table one process gives, bit for bit; the markers that
say a share is done; the figures refuse to be shared."""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jinvert import distributed, reproduce
from jinvert.result_store import ResultStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE1 = ["reproduce", "table1", "--limit", "3", "--iterations", "6", "--rep", "hog",
          "--batch-size", "1"]


def _env(cache):
    return dict(os.environ, JAX_PLATFORMS="cpu", JINVERT_CACHE_DIR=str(cache),
                PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _rows(md: str, start: str) -> list[str]:
    """The table rows of ``md`` from the line starting with ``start`` on."""
    lines = md.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(start))
    return [line for line in lines[i:] if line.startswith("|")]


def test_reproduce_table1_on_two_processes_gives_one_process_table(tmp_path):
    cache = tmp_path / "cache"
    one = subprocess.run([sys.executable, "-m", "jinvert.cli", *TABLE1, "--out",
                          str(tmp_path / "one")], env=_env(cache), cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    port = _port()
    procs = [subprocess.Popen([sys.executable, "-m", "jinvert.cli", *TABLE1, "--out",
                               str(tmp_path / "two"), "--coordinator", f"localhost:{port}",
                               "--num-processes", "2", "--process-id", str(i)],
                              env=_env(cache), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stdout[-2000:] + stderr[-3000:]
    assert "share done; process 0 writes the table" in outputs[1][0]
    a, b = tmp_path / "one", tmp_path / "two"
    # Process 0 alone wrote the table; process 1's own folder is gone.
    assert sorted(os.listdir(b)) == ["table1", "table1.md", "table1.png"]
    # Each process wrote its shard: three batches of one, two and one.
    shards = {i: ResultStore(str(b / "table1" / "results.jsonl"), shard=(i, 2))
              for i in range(2)}
    own = {i: [json.loads(line)["id"] for line in open(s.path)] for i, s in shards.items()}
    assert sorted(map(len, own.values())) == [1, 2]
    # The same records, codes, pictures and table as one process, bit for bit.
    records = ResultStore(str(a / "table1" / "results.jsonl"), shard=(0, 1)).records
    assert shards[0].records == records
    for name in ("astronaut", "camera", "coffee"):
        np.testing.assert_array_equal(np.load(a / "table1" / "hog" / f"{name}.npy"),
                                      np.load(b / "table1" / "hog" / f"{name}.npy"))
        assert ((a / "table1" / "hog" / f"{name}.png").read_bytes()
                == (b / "table1" / "hog" / f"{name}.png").read_bytes())
    ma, mb = ((o / "table1.md").read_text() for o in (a, b))
    assert _rows(ma, "| HOG") == _rows(mb, "| HOG")
    assert _rows(ma, "| image") == _rows(mb, "| image")
    assert len(_rows(ma, "| image")) == 2 + 3


def test_markers_say_which_share_is_done(tmp_path):
    shares = [distributed.digest(["a", "b"]), distributed.digest(["c"])]
    assert shares[0] != shares[1] and shares[0] == distributed.digest(["a", "b"])
    path = distributed.mark_done(str(tmp_path), 1, 2, shares[1])
    assert os.path.basename(path).startswith("shard-00001-of-00002-")
    distributed.mark_done(str(tmp_path), 0, 2, shares[0])
    assert distributed.wait_for_all(str(tmp_path), shares) < 1.0
    # A marker of another share (other images, another count) does not count.
    other = distributed.digest(["a"])
    assert not os.path.exists(distributed.marker_path(str(tmp_path), 0, 2, other))
    assert not os.path.exists(distributed.marker_path(str(tmp_path), 0, 3, shares[0]))


def test_no_options_no_runtime_and_figures_are_not_shared(capsys):
    args = argparse.Namespace(distributed=False, coordinator=None, num_processes=None,
                              process_id=None)
    assert not distributed.requested(args)
    assert distributed.initialize_from_args(args) == (0, 1)
    parser = argparse.ArgumentParser()
    reproduce.add_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["reproduce", "fig4", "--num-processes", "2", "--process-id",
                              "0", "--coordinator", "localhost:1"])
    assert reproduce.run(args) == 2
    assert "only table1 and table3 run as several processes" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--process-id must be in 0..1"):
        distributed.initialize_from_args(argparse.Namespace(
            distributed=False, coordinator="localhost:1", num_processes=2, process_id=2))
