"""One module per result of the paper (Mahendran & Vedaldi, CVPR 2015).

Each module has ``run(args, log) -> list[str]`` (the files it wrote) and is
reached through ``jinvert reproduce NAME`` (:mod:`jinvert.reproduce`). The
shared machinery (image sets, batched and sharded inversion, resumable
results) is :mod:`jinvert.experiments.common`. Beyond the paper,
:mod:`jinvert.experiments.preimages` backs ``jinvert maximize`` and
``jinvert caricature`` and draws the figures of docs/preimages.md.
"""

NAMES = ("table1", "table3", "fig2", "fig4", "fig6", "fig7", "fig9", "fig10")
