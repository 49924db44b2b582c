"""requirements-beam.txt (what Dataflow workers get with --requirements_file, next to
--setup_file=./setup.py for tfner itself) is setup.cfg's `beam` extra without apache-beam, which
the Dataflow SDK container provides at the submitting client's version."""

import configparser
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[2]


def _lines(text):
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def test_requirements_beam_is_the_beam_extra_without_apache_beam():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg", encoding="utf-8")
    extra = _lines(config["options.extras_require"]["beam"])
    assert any(r.startswith("apache-beam") for r in extra)
    expected = sorted(r for r in extra if not r.startswith("apache-beam"))
    assert sorted(_lines((REPO / "requirements-beam.txt").read_text(encoding="utf-8"))) == expected


def test_dev_install_includes_the_beam_extra():
    # make setup installs .[dev]: with the beam extra in it, make test (and CI) runs test_beam.py.
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg", encoding="utf-8")
    extras = config["options.extras_require"]
    assert set(_lines(extras["beam"])) <= set(_lines(extras["dev"]))
