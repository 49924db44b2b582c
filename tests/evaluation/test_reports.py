"""``tfner.evaluation.reports.write_between_markers``: the one way the result scripts write a README."""

import doctest

import pytest

from tfner.evaluation import reports


def test_docstring_examples():
    assert doctest.testmod(reports).failed == 0


def test_markers_are_kept_and_a_missing_marker_names_the_file(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- x:start -->\none\n<!-- x:end -->\nb\n<!-- y:start -->\n", encoding="utf-8")
    reports.write_between_markers(readme, "x", "two\n\n")
    reports.write_between_markers(readme, "x", "three")
    assert readme.read_text(encoding="utf-8") == "a\n<!-- x:start -->\nthree\n<!-- x:end -->\nb\n<!-- y:start -->\n"
    with pytest.raises(ValueError, match=r"README.md: markers <!-- y:start --> / <!-- y:end --> not found"):
        reports.write_between_markers(readme, "y", "z")
    readme.write_text("<!-- z:end -->\n<!-- z:start -->\n", encoding="utf-8")
    with pytest.raises(ValueError, match="<!-- z:end --> comes before <!-- z:start -->"):
        reports.write_between_markers(readme, "z", "body")
    with pytest.raises(ValueError, match="no-such.md"):
        reports.check_markers(tmp_path / "no-such.md", "z")
