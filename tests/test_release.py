"""The version users see moves with the changelog."""

import re

import zoo
from tests.conftest import REPO


def test_the_newest_changelog_version_is_the_package_version():
  text = (REPO / "CHANGELOG.md").read_text()
  versions = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d\d-\d\d)$", text, re.M)
  assert versions, "CHANGELOG.md lists no released version"
  assert versions[0][0] == zoo.__version__
  assert "## [Unreleased]" in text.split(f"## [{versions[0][0]}]")[0]
  dates = [d for _, d in versions]
  assert dates == sorted(dates, reverse=True)  # Newest first.
