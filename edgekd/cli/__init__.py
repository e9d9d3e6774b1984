"""The ``edgekd`` command line: ``demo``, ``run``, ``bench``, ``compare``, ``report``, ``sensitivity``,
``models``; ``main`` parses, ``torchrun`` relaunches ``run --nproc N`` under torchrun."""

from edgekd.cli.main import main

__all__ = ["main"]
