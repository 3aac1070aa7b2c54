"""README.md's Python examples run as written, in order, as one script.

Every ```python block of README.md, concatenated in order (a later block may
use the names of an earlier one, as a reader running them one after another
in a notebook would), runs in a fresh interpreter in an empty folder with
the compilation cache off. Only the iteration counts are made smaller, by
the exact replacements in :data:`SUBSTITUTIONS`, each of which must occur
once in the README (so that an edited example makes this test say so rather
than silently run the README's long version). The test then reads what the
examples print and write: every printed number labelled, the relative code
errors below what the random start gives (1.05 for this photo), and the
PNG of the first example at its size.
"""

import os
import re
import subprocess
import sys

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")

#: (README text, what the test runs instead): fewer iterations, for time.
SUBSTITUTIONS = (
    # the first example: 200 iterations (4 × 50) -> 80 (4 × 20), 2 samples kept
    ("config = rep.defaults.with_iterations(200)", "config = rep.defaults.with_iterations(80)"),
    # the warm start from the bundled decoder: 80 iterations -> 8
    ("config=rep.defaults.with_iterations(80))", "config=rep.defaults.with_iterations(8))"),
    # your own term (a texture): 200 iterations -> 40
    ("settings = rep.defaults.with_iterations(200)",
     "settings = rep.defaults.with_iterations(40)"),
    # your own flax layer: 200 iterations -> 20
    ("replace(lambda_tv=0.5).with_iterations(200)", "replace(lambda_tv=0.5).with_iterations(20)"),
)

_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_NUMBER = r"(-?\d+(?:\.\d+)?)"


def readme_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks of ``text``, in order."""
    return _BLOCK.findall(text)


def readme_script(text: str, substitutions=SUBSTITUTIONS) -> str:
    """The README's Python blocks as one script, with ``substitutions``
    applied; each replaced text must occur exactly once."""
    script = "\n".join(readme_blocks(text))
    for old, new in substitutions:
        count = script.count(old)
        assert count == 1, (f"README.md's Python examples contain {old!r} {count} times, "
                            f"not once: update tests/test_readme.py's SUBSTITUTIONS")
        script = script.replace(old, new)
    return script


def run_script(script: str, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, JINVERT_CACHE_DIR="",
               PYTHONPATH=os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    path = os.path.join(cwd, "readme_examples.py")
    with open(path, "w") as f:
        f.write(script)
    return subprocess.run([sys.executable, path], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_readme_blocks_are_found():
    with open(README) as f:
        blocks = readme_blocks(f.read())
    # the first example, your own term, the decoder, your own flax layer
    assert len(blocks) == 4, [b.splitlines()[0] for b in blocks]
    assert "images.load_image()" in blocks[0]
    assert "jinvert.minimize" in blocks[1]
    assert "decoders.bundled" in blocks[2]
    assert "flax_layer" in blocks[3]


def test_readme_examples_run_in_order(tmp_path):
    with open(README) as f:
        script = readme_script(f.read())
    done = run_script(script, tmp_path)
    assert done.returncode == 0, (f"README.md's Python examples failed (exit {done.returncode}):\n"
                                  f"{done.stderr[-4000:]}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]

    # Every printed number comes with a label ("what: 0.37").
    for line in lines:
        if re.search(r"\d", line):
            assert re.search(r"[A-Za-z][^:]*: " + _NUMBER, line), f"unlabelled number: {line!r}"

    # The first example: its two reconstructions after 4 × 20 iterations.
    # The random start's relative code error is 1.05 on this photo, 80
    # iterations gave 0.59 and 200 give 0.37.
    first = [float(m.group(1)) for line in lines
             if (m := re.fullmatch(r"relative code error: " + _NUMBER, line))]
    assert len(first) == 1, lines
    assert 0.2 < first[0] < 0.8, first

    # Your own term: the texture's style term falls (measured 4.37 -> 0.34
    # in 40 iterations), and the picture is written.
    style = [m for line in lines
             if (m := re.fullmatch(r"style term, start: " + _NUMBER + r"; after (\d+) "
                                   r"iterations: " + _NUMBER, line))]
    assert len(style) == 1, lines
    assert int(style[0].group(2)) == 40
    assert float(style[0].group(3)) < 0.2 * float(style[0].group(1)), style[0].group(0)
    assert (tmp_path / "hog-texture.png").exists()

    # The decoder: one pass alone, then 8 iterations from it.
    decoder = [m for line in lines
               if (m := re.fullmatch(r"relative code error, decoder alone: " + _NUMBER
                                     + r"; after (\d+) iterations from it: " + _NUMBER, line))]
    assert len(decoder) == 1, lines
    alone, iterations, warm = float(decoder[0].group(1)), int(decoder[0].group(2)), \
        float(decoder[0].group(3))
    assert iterations == 8
    assert 0.2 < alone < 0.8 and 0.2 < warm < 0.9, (alone, warm)

    # The PNG: the photo, the HOG glyphs and the two reconstructions, each
    # 256 pixels high (the glyphs of 32 × 32 cells are square), on a white
    # margin of 4 pixels around and between them.
    png = tmp_path / "hog-reconstructions.png"
    assert png.exists(), os.listdir(tmp_path)
    with Image.open(png) as im:
        size = im.size
        pixels = np.asarray(im.convert("L"), np.float32)
    assert size == (4 * 256 + 5 * 4, 256 + 2 * 4), size
    assert pixels[4:-4, 4:260].std() > 10, "the photo's panel is blank"


def test_every_call_the_docs_write_exists_after_import_jinvert():
    """A call written in README.md or docs/*.md as ```jinvert.a.b(...)```
    works in a session that ran ``import jinvert`` only (a submodule that
    ``import jinvert`` does not load, e.g. ``jinvert.folder``, would not)."""
    import glob

    import jinvert

    missing, calls = [], {}
    for path in [README, *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]:
        with open(path, encoding="utf-8") as f:
            calls[path] = set(re.findall(r"`(jinvert(?:\.\w+)+)\(", f.read()))
        for name in sorted(calls[path]):
            obj = jinvert
            for part in name.split(".")[1:]:
                obj = getattr(obj, part, None)
            if obj is None:
                missing.append(f"{os.path.relpath(path, ROOT)}: {name}")
    assert len(calls[README]) > 10  # the pattern still finds README's calls
    assert not missing, missing
