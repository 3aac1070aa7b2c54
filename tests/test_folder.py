"""``jinvert invert DIR``: a folder of photos in, reconstructions and a summary out.

The plan (sizes, groups, batches, shares), the store (manifest, shards, a
line cut by a kill), a batch resumed slot by slot giving the bits of the
whole batch, and the command run for real: one process, two processes under
``jax.distributed`` (the same bits, the same tables), and a run killed
halfway then resumed (nothing lost, nothing recomputed or rewritten).
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from jinvert import distributed, folder_plan
from jinvert.experiments import common
from jinvert.folder_store import FolderStore
from jinvert.result_store import ResultStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The photos of the runs: skimage crops, two sizes, one in a sub-folder.
PHOTOS = {"astronaut.png": (24, 32), "camera.png": (24, 32), "sub/coffee.png": (24, 32),
          "chelsea.png": (32, 24), "rocket.png": (32, 24)}
#: A short run of HOG on them: 2 batches of 24 x 32 (the second padded), 1 of 32 x 24.
OPTIONS = ["--rep", "hog", "--iterations", "6", "--max-size", "32", "--batch", "2",
           "--seed", "3"]


# ---------------------------------------------------------------------------
# The plan, the shares, the store: no inversion.
# ---------------------------------------------------------------------------

def test_batch_slots_fixed_by_count_and_size():
    assert common.batch_slots(5, 2) == [[0, 1], [2, 3], [4, 4]]
    assert common.batch_slots(3, 8) == [[0, 1, 2]]             # min(size, count) slots
    assert common.batch_slots(1, 4) == [[0]]
    assert common.batch_slots(0, 4) == []


def test_assign_is_deterministic_balanced_and_keeps_groups_together():
    # Ten equal pieces of one group, no setup: five each, in two runs.
    owners = distributed.assign([1.0] * 10, [0] * 10, 2)
    assert owners == [0] * 5 + [1] * 5
    assert distributed.assign([1.0] * 10, [0] * 10, 3) == [1] * 3 + [0] * 4 + [2] * 3
    # A costly compile per group: each process keeps to its groups ...
    costs = [1.0] * 8
    groups = ["a"] * 4 + ["b"] * 4
    assert distributed.assign(costs, groups, 2, setup_cost=100.0) == [0] * 4 + [1] * 4
    # ... unless one group is most of the work: it is cut in two.
    costs = [100.0] * 4 + [1.0, 1.0]
    owners = distributed.assign(costs, ["a"] * 4 + ["b"] * 2, 2, setup_cost=10.0)
    assert owners[:4] == [0, 0, 1, 1] and owners[4:] in ([0, 0], [1, 1])
    # The same answer every time (every process computes it alone).
    assert owners == distributed.assign(costs, ["a"] * 4 + ["b"] * 2, 2, setup_cost=10.0)
    # A long piece is given alone while the others share the rest.
    owners = distributed.assign([9.0, 3.0, 3.0, 3.0], [0, 1, 2, 3], 2)
    assert owners == [0, 1, 1, 1]
    # More processes than pieces: some get nothing, none twice.
    assert sorted(distributed.assign([1.0, 1.0], [0, 0], 4)) == [0, 1]


def test_fitted_size_follows_the_single_image_rule():
    assert folder_plan.fitted_size((375, 500), max_size=64) == (48, 64)
    assert folder_plan.fitted_size((500, 333), max_size=64) == (64, 43)
    assert folder_plan.fitted_size((20, 30), max_size=64) == (20, 30)     # never enlarged
    assert folder_plan.fitted_size((375, 500), fixed=(40, 40), max_size=64) == (40, 40)
    assert folder_plan.fitted_size((375, 500), input_size=(227, 227)) == (227, 227)
    with pytest.raises(ValueError, match="drop --size"):
        folder_plan.fitted_size((375, 500), input_size=(227, 227), fixed=(40, 40))


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """The photos of :data:`PHOTOS` (and a text file, which is not an image)."""
    from skimage import data

    from jinvert import images as im

    folder = tmp_path_factory.mktemp("photos")
    for name, size in PHOTOS.items():
        stem = os.path.splitext(os.path.basename(name))[0]
        pixels = im.to_rgb(np.asarray(getattr(data, stem)(), np.float32) / 255.0)
        os.makedirs(folder / os.path.dirname(name), exist_ok=True)
        im.save_image(folder / name, im.resize_and_crop(pixels, size))
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_plan_groups_sizes_and_fixes_batches(photo_dir, tmp_path):
    import shutil

    from jinvert.registry import resolve_representation

    rep = resolve_representation("hog")
    photo_dir = shutil.copytree(photo_dir, tmp_path / "photos")
    out = photo_dir / "out"            # an output folder inside the photos is left out
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "images" / "old.png").write_bytes((photo_dir / "camera.png").read_bytes())
    plan = folder_plan.make_plan(str(photo_dir), rep, batch=2, max_size=32, exclude=str(out))
    assert [i.name for i in plan.items] == sorted(PHOTOS)
    assert {i.name: i.size for i in plan.items} == PHOTOS
    assert [(b.name, b.names()) for b in plan.batches] == [
        ("24x32 #0", ["astronaut.png", "camera.png"]), ("24x32 #1", ["sub/coffee.png"]),
        ("32x24 #0", ["chelsea.png", "rocket.png"])]
    assert [len(b.items) for b in plan.batches] == [2, 2, 2]    # the last one padded
    only_sub = folder_plan.make_plan(str(photo_dir), rep, batch=2, max_size=32,
                                     pattern="sub/*")
    assert [i.name for i in only_sub.items] == ["sub/coffee.png"]
    shrunk = folder_plan.make_plan(str(photo_dir), rep, batch=8, max_size=16, exclude=str(out))
    assert sorted({i.size for i in shrunk.items}) == [(12, 16), (16, 12)]
    with pytest.raises(ValueError, match="no image files"):
        folder_plan.make_plan(str(photo_dir), rep, batch=2, pattern="*.jpeg")


def test_store_refuses_other_settings(tmp_path):
    FolderStore(str(tmp_path), {"seed": 0, "batch": 2})
    FolderStore(str(tmp_path), {"batch": 2, "seed": 0})          # the same: resumes
    with pytest.raises(ValueError, match=r"other settings \(seed: 0 then, 1 now\)"):
        FolderStore(str(tmp_path), {"seed": 1, "batch": 2})


def test_result_store_shards_and_a_line_cut_by_a_kill(tmp_path):
    path = str(tmp_path / "results.jsonl")
    one = ResultStore(path, shard=(0, 1))
    assert one.path == path
    one.add([{"id": "a"}])
    with open(path, "a") as f:
        f.write('{"id": "b", "cut sho')                    # a kill in mid-line
    two = ResultStore(path, shard=(1, 2))
    assert two.path.endswith("results.shard-00001-of-00002.jsonl")
    assert two.done() == {"a"}                              # b is redone
    one.add([{"id": "b"}])                                  # on a line of its own
    two.add([{"id": "c"}])
    assert ResultStore(path, shard=(0, 2)).done() == {"a", "b", "c"}


def test_a_batch_resumed_slot_by_slot_gives_the_bits_of_the_whole_batch(photo_dir):
    """What makes a resumed run, or a run on any process, equal a fresh one:
    a slot's result does not depend on what fills the other slots."""
    import jax

    from jinvert import images as im
    from jinvert.registry import resolve_representation

    rep = resolve_representation("hog")
    names = ["astronaut.png", "camera.png", "sub/coffee.png"]
    xs = np.stack([np.asarray(rep.preprocess(im.load_image(photo_dir / n))) for n in names])
    codes = common.compute_codes(rep, xs)
    keys = jax.numpy.stack([common.image_key(jax.random.PRNGKey(3), n) for n in names])
    config = common.config_for(rep, iterations=4)
    run = lambda todo: common.invert_slots(rep, codes, keys, todo, config=config,  # noqa: E731
                                           shape=xs.shape[1:])
    whole, codes_whole, _, restarts = run([True, True, True])
    assert restarts.tolist() == [0, 0, 0] and np.all(np.isfinite(whole))
    for todo in ([False, True, False], [False, False, True], [True, False, False]):
        part, codes_part, _, _ = run(todo)
        for j in np.flatnonzero(todo):
            np.testing.assert_array_equal(part[j], whole[j])
            np.testing.assert_array_equal(codes_part[j], codes_whole[j])
    assert not np.array_equal(whole[0], whole[1])           # each slot its own key


# ---------------------------------------------------------------------------
# The command, for real: one process, two, killed and resumed.
# ---------------------------------------------------------------------------

def _env(cache):
    return dict(os.environ, JAX_PLATFORMS="cpu", JINVERT_CACHE_DIR=str(cache),
                PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
                PYTHONUNBUFFERED="1")


def _command(photo_dir, out, *extra):
    return [sys.executable, "-m", "jinvert.cli", "invert", str(photo_dir), "--out", str(out),
            *OPTIONS, *extra]


def _run(photo_dir, out, cache, *extra):
    done = subprocess.run(_command(photo_dir, out, *extra), env=_env(cache), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A compilation cache shared by the runs below (programs, not results)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def one_process(photo_dir, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "out"
    stdout = _run(photo_dir, out, cache)
    return out, stdout


def _records(out):
    """Every line of a store, without what says where and when it ran."""
    store = ResultStore(str(out / "store" / "results.jsonl"), shard=(0, 1))
    return {k: {f: v for f, v in r.items() if f not in ("process", "batch_seconds")}
            for k, r in store.records.items()}


def _section(text, title):
    """The lines of summary.md from the table after ``title`` to a blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title)) + 1
    while not lines[start].startswith("|"):
        start += 1
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")),
               len(lines))
    return lines[start:end]


def assert_same_results(a, b):
    """Two stores hold the same images, bit for bit, and the same tables."""
    assert _records(a) == _records(b)
    names = sorted(_records(a))
    assert len(names) == len(PHOTOS)
    for name in names:
        with np.load(a / "store" / "arrays" / f"{name}.npz") as x, \
                np.load(b / "store" / "arrays" / f"{name}.npz") as y:
            assert x.files == y.files
            for k in x.files:
                np.testing.assert_array_equal(x[k], y[k], err_msg=f"{name}: {k}")
        picture = _records(a)[name]["picture"]
        assert (a / picture).read_bytes() == (b / picture).read_bytes(), picture
    ta, tb = (json.loads((o / "summary.json").read_text()) for o in (a, b))
    assert ta["images"] == tb["images"] and ta["settings"] == tb["settings"]
    ma, mb = ((o / "summary.md").read_text() for o in (a, b))
    assert _section(ma, "Errors in percent") == _section(mb, "Errors in percent")
    assert _section(ma, "## Per image") == _section(mb, "## Per image")


def test_one_process_writes_each_image_and_a_summary_recomputable_from_the_store(
        one_process, photo_dir):
    import jax

    from jinvert.metrics import reconstruction_error
    from jinvert.registry import resolve_representation

    out, stdout = one_process
    assert "| all | 5 |" in stdout and "wrote" in stdout
    rep = resolve_representation("hog")
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["image"]: r for r in summary["images"]}
    assert sorted(rows) == sorted(PHOTOS)
    codes, refs, relatives = [], [], []
    for name in sorted(PHOTOS):
        arrays = np.load(out / "store" / "arrays" / f"{name}.npz")
        # The arrays agree with each other and with the photo on disk.
        assert arrays["reconstruction"].shape == (1, *PHOTOS[name], 1)
        np.testing.assert_allclose(np.asarray(rep(arrays["original"])), arrays["reference"],
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(rep(arrays["reconstruction"][0])),
                                   arrays["code"][0], rtol=1e-4, atol=1e-5)
        from jinvert import images as im
        photo = np.asarray(rep.preprocess(im.load_image(photo_dir / name)))
        np.testing.assert_array_equal(arrays["original"], photo)
        # The key is the name's (not the batch's, not the process's).
        np.testing.assert_array_equal(
            arrays["key"], np.asarray(common.image_key(jax.random.PRNGKey(3), name)))
        code, ref = arrays["code"][0].astype(np.float64), arrays["reference"].astype(np.float64)
        relative = np.linalg.norm(code - ref) / np.linalg.norm(ref)
        assert arrays["relative_error"][0] == pytest.approx(relative, rel=1e-12)
        assert rows[name]["relative_percent"] == pytest.approx(100 * relative, rel=1e-12)
        relatives.append(relative)
        assert json.loads(str(arrays["settings"]))["seed"] == 3
        codes.append(code)
        refs.append(ref)
        assert (out / rows[name]["picture"]).exists()
    # Six iterations bring the codes nearer their photos' than noise's
    # (about 100 %; rocket's flat sky, at 32 x 24, stays near it).
    assert np.mean(relatives) < 0.85 and max(relatives) < 1.2, relatives
    # The paper's error over the folder, recomputed from the stored codes.
    for key, squared in (("normalised_percent", False), ("squared_percent", True)):
        expected = 100 * reconstruction_error(codes, refs, squared=squared)
        got = [rows[name][key] for name in sorted(PHOTOS)]
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    # summary.md says the same, rounded; and by size, mean ± std.
    md = (out / "summary.md").read_text()
    for line in _section(md, "## Per image"):
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] in rows:
            assert float(cells[2]) == round(rows[cells[0]]["relative_percent"], 2)
            assert float(cells[3]) == round(rows[cells[0]]["normalised_percent"], 2)
    table = _section(md, "Errors in percent")
    everything = next(line for line in table if line.startswith("| all |"))
    mean, std = (float(v) for v in everything.split("|")[4].split("±"))
    norm = [rows[n]["normalised_percent"] for n in rows]
    assert mean == round(np.mean(norm), 2) and std == round(np.std(norm), 2)
    assert any(line.startswith("| 24 × 32 | 3 |") for line in table)
    assert any(line.startswith("| 32 × 24 | 2 |") for line in table)
    assert (out / "images" / "sub" / "coffee.png").exists()


def test_a_second_run_resumes_with_nothing_to_do_and_other_settings_are_refused(
        one_process, photo_dir, cache):
    out, _ = one_process
    before = {p: os.stat(p).st_mtime_ns for p in (out / "store" / "arrays").rglob("*.npz")}
    stdout = _run(photo_dir, out, cache)
    assert "5 done already; 0 batch(es)" in stdout
    assert {p: os.stat(p).st_mtime_ns for p in before} == before
    done = subprocess.run(_command(photo_dir, out, "--seed", "4"), env=_env(cache), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "other settings (seed: 3 then, 4 now)" in done.stderr


def test_two_processes_give_what_one_gives(one_process, photo_dir, cache, tmp_path):
    """Two local CPU processes under jax.distributed: each inverts its share
    into its shard; process 0 writes the summary; the same bits as one."""
    out = tmp_path / "two"
    port = free_port()
    procs = [subprocess.Popen(_command(photo_dir, out, "--coordinator", f"localhost:{port}",
                                       "--num-processes", "2", "--process-id", str(i)),
                              env=_env(cache), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stdout[-2000:] + stderr[-3000:]
    assert "| all | 5 |" in outputs[0][0]                      # process 0: the table
    assert "share done; process 0 writes the summary" in outputs[1][0]
    shards = sorted(os.listdir(out / "store"))
    assert "results.shard-00000-of-00002.jsonl" in shards
    assert "results.shard-00001-of-00002.jsonl" in shards
    by_process = {}
    store = ResultStore(str(out / "store" / "results.jsonl"), shard=(0, 1))
    for name, rec in store.records.items():
        by_process.setdefault(rec["process"], []).append(name)
    assert sorted(by_process) == [0, 1]                        # both did a share
    assert_same_results(one_process[0], out)


def test_a_killed_run_resumes_with_nothing_lost_or_recomputed(one_process, photo_dir,
                                                               tmp_path):
    out = tmp_path / "killed"
    # A cache of its own, empty: the second size compiles for seconds, so
    # the kill lands after the first batch and before the last.
    env = _env(tmp_path / "own-cache")
    proc = subprocess.Popen(_command(photo_dir, out), env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store_file = out / "store" / "results.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if store_file.exists() and store_file.read_text().count("\n") >= 1:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    finished = ResultStore(str(store_file), shard=(0, 1)).records
    assert 1 <= len(finished) < len(PHOTOS), finished
    assert not (out / "summary.md").exists()
    files = [out / "store" / "arrays" / f"{n}.npz" for n in finished]
    files += [out / r["picture"] for r in finished.values()]
    before = {f: (os.stat(f).st_ino, os.stat(f).st_mtime_ns) for f in files}

    stdout = subprocess.run(_command(photo_dir, out), env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=300).stdout
    assert f"{len(finished)} done already" in stdout, stdout
    # The finished images' files were not written again, ...
    assert {f: (os.stat(f).st_ino, os.stat(f).st_mtime_ns) for f in files} == before
    # ... each image was recorded once, and nothing was lost: the same bits
    # and tables as the run that was never stopped.
    lines = []
    for line in store_file.read_text().splitlines():
        try:
            lines.append(json.loads(line)["id"])
        except json.JSONDecodeError:
            pass                                           # a line cut by the kill
    assert sorted(lines) == sorted(PHOTOS)
    assert_same_results(one_process[0], out)
    assert re.search(r"\| all \| 5 \|", stdout)
