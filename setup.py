"""Minimal setup.py: metadata lives in setup.cfg.

The model-card template sits at the top of the repository (next to this file) and is copied
into the package when it is built, so an installed `mlclf_hub` can render cards.
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = "model_card_template.md"


class BuildPyWithTemplate(build_py):
    """`build_py` that also ships the top-level model-card template inside the package."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "mlclf_hub", TEMPLATE)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(HERE, TEMPLATE), target)


setup(cmdclass={"build_py": BuildPyWithTemplate})
