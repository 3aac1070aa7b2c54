"""jinvert installs without a package index, as README and the notebooks say.

jinvert is not on PyPI. README gives the command that installs it from its
repository, and every notebook's first code cell (the same cell in all four)
installs it from there where ``import jinvert`` fails. These tests check:

* the four first cells are identical and name the repository of
  pyproject's ``[project.urls]``, as README's install command does, and the
  notebooks link nothing that resolves only inside a checkout;
* the cell does nothing where jinvert imports, and otherwise runs exactly
  ``pip install -q "jinvert[notebooks] @ git+URL"`` (or the source
  ``JINVERT_INSTALL`` names), with pip replaced by a recorder;
* the cell's pip command, run for real with ``JINVERT_INSTALL`` set to a copy
  of this checkout (with ``--no-deps --target`` added, so that it installs
  into a temporary folder), installs a jinvert whose every module imports
  from there, and which loads its bundled photo;
* ``python -m build`` makes an sdist and a wheel holding the bundled data and
  the ``py.typed`` marker, and the wheel, installed into a fresh virtual
  environment (dependencies from the system's site-packages), imports every
  module from that environment (none from the checkout, whose editable
  install the system may hold) and runs ``jinvert invert`` on the bundled
  photo from an empty folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: What a wheel and an sdist must carry besides the code.
PACKAGE_DATA = ("jinvert/data/astronaut.png", "jinvert/data/hog-decoder.npz", "jinvert/py.typed")


def repository_url() -> str:
    """pyproject's ``[project.urls] Repository``."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = re.search(r"^\[project\.urls\]\n(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
    assert section, "pyproject.toml has no [project.urls] table"
    url = re.search(r'^Repository\s*=\s*"([^"]+)"', section.group(1), re.MULTILINE)
    assert url, "pyproject.toml's [project.urls] has no Repository"
    return url.group(1)


def first_code_cells() -> dict[str, str]:
    cells = {}
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text(encoding="utf-8"))
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        source = code[0]["source"]
        cells[path.name] = "".join(source) if isinstance(source, list) else source
    return cells


def install_cell() -> str:
    cells = first_code_cells()
    assert len(cells) == 4, cells.keys()
    distinct = set(cells.values())
    assert len(distinct) == 1, f"the notebooks' first code cells differ: {sorted(cells)}"
    return distinct.pop()


def run_cell(source: str) -> dict:
    """Execute the cell as a notebook would (one namespace); return it."""
    namespace = {"__name__": "__main__"}
    exec(compile(source, "<first cell>", "exec"), namespace)
    return namespace


def copy_checkout(dest: pathlib.Path) -> pathlib.Path:
    """What a source distribution is made of (pyproject.toml, README.md,
    jinvert/), copied so that building writes nothing into the checkout."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "jinvert", dest / "jinvert",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def clean_env(**extra) -> dict:
    """The environment without anything that would put the checkout on the path."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP") and not k.startswith("PIP_")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", JINVERT_CACHE_DIR="", **extra)
    return env


def package_modules(source: pathlib.Path) -> list[str]:
    """Every module of the jinvert package under ``source`` (a copy of the checkout)."""
    package = source / "jinvert"
    return sorted(".".join(path.relative_to(source).with_suffix("").parts).removesuffix(".__init__")
                  for path in package.rglob("*.py"))


#: Prints where each module named in argv[1] (JSON) is found, then where every
#: jinvert module imported on the way was loaded from, then the version check.
ORIGINS = """
import importlib.metadata, importlib.util, json, sys
import jinvert, jinvert.images
names = json.loads(sys.argv[1])
origins = {name: getattr(importlib.util.find_spec(name), "origin", None) for name in names}
origins.update({name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())
                if name.split(".")[0] == "jinvert" and module is not None})
print(json.dumps({"origins": origins, "photo": list(jinvert.images.load_image().shape),
                  "version": jinvert.__version__,
                  "same_version": jinvert.__version__ == importlib.metadata.version("jinvert")}))
"""


def check_origins(python, source: pathlib.Path, where: pathlib.Path, cwd: pathlib.Path, env: dict) -> dict:
    """Run :data:`ORIGINS` with ``python``: every module of the package must
    come from ``where`` (the install under test), none from the checkout,
    whose editable install the system may hold (its finder fills in any
    module an install lacks)."""
    done = subprocess.run([str(python), "-c", ORIGINS, json.dumps(package_modules(source))],
                          cwd=cwd, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    where = where.resolve()
    strays = {name: origin for name, origin in result["origins"].items()
              if origin is None or not pathlib.Path(origin).resolve().is_relative_to(where)}
    assert not strays, f"modules not loaded from the install in {where}: {strays}"
    assert result["photo"] == [256, 256, 3], result["photo"]
    return result


def test_first_cells_identical_and_name_the_repository():
    url = repository_url()
    cell = install_cell()
    assert f'JINVERT_REPOSITORY = "{url}"' in cell, "the notebooks' first cell names another repository"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f'pip install "jinvert[notebooks] @ git+{url}"' in readme, \
        "README does not give the install command from the repository"
    # The cell's requirement is one pip reads: jinvert, with an extra that exists.
    from packaging.requirements import Requirement
    requirement = Requirement(f"jinvert[notebooks] @ git+{url}")
    assert requirement.name == "jinvert" and requirement.url == f"git+{url}"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"^notebooks\s*=", pyproject, re.MULTILINE), "no 'notebooks' extra in pyproject"


def test_notebooks_link_nothing_only_a_checkout_has():
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            for target in re.findall(r"\]\(([^)\s]+)", "".join(cell["source"])):
                assert re.match(r"(https?://|#)", target), \
                    f"{path.name} links {target!r}, which resolves only inside a checkout"


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, command, *args, **kwargs):
        self.calls.append(list(command))
        return 0


def test_first_cell_installs_only_where_jinvert_is_missing(monkeypatch, tmp_path):
    cell = install_cell()
    url = repository_url()
    pip = Recorder()
    monkeypatch.setattr(subprocess, "check_call", pip)
    monkeypatch.delenv("JINVERT_INSTALL", raising=False)

    # jinvert imports: nothing is installed.
    assert run_cell(cell)["pip_command"] is None and pip.calls == []

    # jinvert does not import: pip installs it from the repository, with the
    # notebooks' extras, into the kernel's own interpreter.
    monkeypatch.setitem(sys.modules, "jinvert", None)
    expected = [sys.executable, "-m", "pip", "install", "-q", f"jinvert[notebooks] @ git+{url}"]
    assert run_cell(cell)["pip_command"] == expected
    assert pip.calls == [expected]

    # JINVERT_INSTALL: a pip URL as given, a folder as a file: URL.
    monkeypatch.setenv("JINVERT_INSTALL", "git+https://example.org/fork/jinvert@branch")
    assert run_cell(cell)["pip_command"][-1] == \
        "jinvert[notebooks] @ git+https://example.org/fork/jinvert@branch"
    monkeypatch.setenv("JINVERT_INSTALL", str(tmp_path))
    assert run_cell(cell)["pip_command"][-1] == f"jinvert[notebooks] @ {tmp_path.as_uri()}"
    assert len(pip.calls) == 3


def test_first_cell_installs_this_checkout(monkeypatch, tmp_path):
    """The cell's own pip command, run for real on a copy of this checkout."""
    cell = install_cell()
    source = copy_checkout(tmp_path / "src")
    target = tmp_path / "target"
    monkeypatch.setitem(sys.modules, "jinvert", None)  # as where jinvert is not installed
    monkeypatch.setenv("JINVERT_INSTALL", str(source))
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    real_check_call = subprocess.check_call
    ran = []

    def pip_into_target(command, *args, **kwargs):
        # The cell's command as it is, plus: into a folder of our own (not the
        # system's site-packages), without the dependencies (jax, flax, ...
        # are here already).
        ran.append(list(command))
        return real_check_call([*command, "--no-deps", "--target", str(target)], *args, **kwargs)

    monkeypatch.setattr(subprocess, "check_call", pip_into_target)
    command = run_cell(cell)["pip_command"]
    assert ran == [command] and command[:5] == [sys.executable, "-m", "pip", "install", "-q"]
    assert command[-1] == f"jinvert[notebooks] @ {source.as_uri()}"
    for name in PACKAGE_DATA:
        assert (target / name).is_file(), f"the install lacks {name}"

    empty = tmp_path / "cwd"
    empty.mkdir()
    # Every module, and the bundled photo, from the folder the cell installed into.
    result = check_origins(sys.executable, source, target, empty, clean_env(PYTHONPATH=str(target)))
    assert result["version"], result


@pytest.mark.skipif(importlib.util.find_spec("build") is None,
                    reason="the 'build' package is not installed (pip install build, "
                           "or pip install '.[test]')")
def test_wheel_installs_and_runs_in_a_fresh_venv(tmp_path):
    source = copy_checkout(tmp_path / "src")
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(source)],
                           capture_output=True, text=True, timeout=300, env=clean_env())
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = dist.glob("jinvert-*.whl")
    (sdist,) = dist.glob("jinvert-*.tar.gz")
    with zipfile.ZipFile(wheel) as z:
        in_wheel = set(z.namelist())
    with tarfile.open(sdist) as t:
        in_sdist = {name.split("/", 1)[1] for name in t.getnames() if "/" in name}
    for name in PACKAGE_DATA:
        assert name in in_wheel, f"{wheel.name} lacks {name}"
        assert name in in_sdist, f"{sdist.name} lacks {name}"

    # A fresh environment: its own site-packages first, the system's (jax,
    # flax, ...) behind it; the checkout's editable install must not be what
    # it imports.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                               capture_output=True, text=True, timeout=300, env=clean_env())
    assert installed.returncode == 0, installed.stderr
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True, env=clean_env()).stdout.strip()

    empty = tmp_path / "cwd"
    empty.mkdir()
    # Every module of the package, and the bundled photo, from the venv's own
    # site-packages; jinvert.__version__ is the wheel's version.
    result = check_origins(python, source, pathlib.Path(site), empty, clean_env())
    assert result["same_version"], "jinvert.__version__ differs from the wheel's version"

    out = empty / "hog.png"
    run = subprocess.run([str(venv / "bin" / "jinvert"), "invert", "--rep", "hog",
                          "--iterations", "5", "--out", str(out)],
                         cwd=empty, capture_output=True, text=True, timeout=300, env=clean_env())
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    from PIL import Image
    with Image.open(out) as picture:
        width, height = picture.size
    # The labelled montage: photo, HOG glyphs and one reconstruction, 256 high.
    assert width >= 3 * 256 and height >= 256, (width, height)
