"""``python -m edgekd`` (and ``torchrun -m edgekd run recipe.yaml``): the command line."""

import sys

from edgekd.cli.main import main

sys.exit(main())
