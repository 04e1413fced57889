"""Builds the zoo. Everything is declared in setup.cfg; this file only adds the shipped
models to the wheel: `saved_models/` (the checkout's exported versions) is copied into the
built package as `zoo/_shipped/`, where `zoo.presets` finds them after a non-editable
install. An editable install reads the checkout's `saved_models/` in place instead.
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithShippedModels(build_py):
  """`build_py`, plus `saved_models/<name>/<version>/...` copied to `zoo/_shipped/`."""

  def run(self):
    super().run()
    if getattr(self, "editable_mode", False):
      return
    source = os.path.join(HERE, "saved_models")
    if not os.path.isdir(source):  # An sdist without it: the presets come from elsewhere.
      return
    target = os.path.join(self.build_lib, "zoo", "_shipped")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("README*", ".*"))


setup(cmdclass={"build_py": BuildPyWithShippedModels})
