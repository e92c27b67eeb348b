"""bnlab.data: search order, unpacking, downloading over local HTTP, and clear errors."""
from __future__ import annotations

import errno
import functools
import gzip
import hashlib
import http.server
import os
import threading
from pathlib import Path

import pytest
import torch
import torchvision.datasets as tvd

from bnlab import data as bdata
from conftest import tiny_idx_set, write_raw

RAW = ("FashionMNIST", "raw")


def test_real_fashion_mnist_shapes_and_range(fmnist):
    assert fmnist.x_train.shape == (60000, 1, 28, 28) and fmnist.x_test.shape == (10000, 1, 28, 28)
    assert fmnist.x_train.dtype == torch.float32 and fmnist.y_train.dtype == torch.int64
    assert 0.0 <= float(fmnist.x_train.min()) and float(fmnist.x_train.max()) <= 1.0
    assert torch.bincount(fmnist.y_train).tolist() == [6000] * 10  # balanced classes
    assert fmnist.classes[0] == "T-shirt/top" and fmnist.classes[9] == "Ankle boot"
    assert fmnist.in_features == 784


def test_explicit_root_comes_first(isolated_data):
    root_a, repo = isolated_data / "a", bdata.repo_data_dir()
    write_raw(root_a.joinpath(*RAW), tiny_idx_set(n_train=20))
    write_raw(repo.joinpath(*RAW), tiny_idx_set(n_train=30))
    assert len(bdata.load(root=root_a).x_train) == 20
    assert len(bdata.load().x_train) == 30  # no root: the repo's data/


def test_bnlab_data_env_comes_before_repo(isolated_data, monkeypatch):
    env_root, repo = isolated_data / "env", bdata.repo_data_dir()
    write_raw(env_root.joinpath(*RAW), tiny_idx_set(n_train=40))
    write_raw(repo.joinpath(*RAW), tiny_idx_set(n_train=30))
    monkeypatch.setenv("BNLAB_DATA", str(env_root))
    assert len(bdata.load().x_train) == 40


def test_debian_copy_is_unpacked_once_and_checked(isolated_data, monkeypatch):
    debian = isolated_data / "debian"
    files = tiny_idx_set()
    write_raw(debian, files, gz=True)
    sums = {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    spec = bdata.DATASETS["fashion-mnist"]
    monkeypatch.setitem(bdata.DATASETS, "fashion-mnist", bdata._Spec(
        spec.torchvision_class, spec.classes, debian, spec.debian_package, sums))
    ds = bdata.load(download=False)
    raw = bdata.repo_data_dir().joinpath(*RAW)
    assert ds.source == raw.resolve() or ds.source == raw
    assert sorted(p.name for p in raw.iterdir()) == sorted(files)  # no temp files left
    assert (raw / "train-images-idx3-ubyte").read_bytes() == files["train-images-idx3-ubyte"]


def test_damaged_debian_copy_is_reported_and_leaves_nothing(isolated_data):
    debian = isolated_data / "debian"
    write_raw(debian, tiny_idx_set(), gz=True)
    gz = debian / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:200])  # truncated archive
    with pytest.raises(bdata.DataError, match="reinstall"):
        bdata.load(download=False)
    raw = bdata.repo_data_dir().joinpath(*RAW)
    leftovers = [p.name for p in raw.iterdir()] if raw.exists() else []
    assert "train-images-idx3-ubyte" not in leftovers
    assert not [n for n in leftovers if n.endswith(".part")]


@pytest.mark.parametrize("where", ["root is a file", "root inside a file"])
def test_unwritable_root_blames_the_root_not_the_system_copy(isolated_data, where):
    """The Debian copy is fine; the fix is another root, not reinstalling the package."""
    write_raw(isolated_data / "debian", tiny_idx_set(), gz=True)
    blocker = isolated_data / "a_file"
    blocker.write_text("not a folder")
    root = blocker if where == "root is a file" else blocker / "data"
    with pytest.raises(bdata.DataRootError) as err:
        bdata.load(root=root, download=False)
    msg = str(err.value)
    assert f"{blocker} is a file" in msg and "root=" in msg and "BNLAB_DATA" in msg
    assert "reinstall" not in msg and "apt-get" not in msg
    assert blocker.read_text() == "not a folder"


def test_read_only_root_blames_the_root(isolated_data, monkeypatch):
    """A folder the user cannot write (simulated: this also runs as root, which ignores permissions)."""
    write_raw(isolated_data / "debian", tiny_idx_set(), gz=True)

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", kwargs.get("dir"))
    monkeypatch.setattr(bdata.tempfile, "mkstemp", refuse)
    with pytest.raises(bdata.DataRootError, match="is not writable.*choose a writable data folder") as err:
        bdata.load(root=isolated_data / "readonly", download=False)
    assert "reinstall" not in str(err.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_for_real(isolated_data):
    write_raw(isolated_data / "debian", tiny_idx_set(), gz=True)
    root = isolated_data / "readonly"
    root.mkdir()
    root.chmod(0o555)
    try:
        with pytest.raises(bdata.DataRootError, match="not writable"):
            bdata.load(root=root, download=False)
    finally:
        root.chmod(0o755)


def test_missing_data_error_names_places_and_fix(isolated_data):
    with pytest.raises(bdata.DataNotFoundError) as err:
        bdata.load(download=False)
    msg = str(err.value)
    assert str(bdata.repo_data_dir().joinpath(*RAW)) in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "python -m bnlab.data fetch fashion-mnist" in msg


def test_truncated_file_is_reported_and_not_touched(isolated_data):
    raw = bdata.repo_data_dir().joinpath(*RAW)
    write_raw(raw, tiny_idx_set())
    target = raw / "t10k-images-idx3-ubyte"
    cut = target.read_bytes()[:-100]
    target.write_bytes(cut)
    with pytest.raises(bdata.DataError, match="truncated.*Delete the folder"):
        bdata.load(download=False)
    assert target.read_bytes() == cut  # never overwritten


def test_existing_files_are_never_overwritten(isolated_data):
    debian = isolated_data / "debian"
    write_raw(debian, tiny_idx_set(seed=1), gz=True)
    raw = bdata.repo_data_dir().joinpath(*RAW)
    mine = tiny_idx_set(seed=2)
    write_raw(raw, {"train-images-idx3-ubyte": mine["train-images-idx3-ubyte"]})
    bdata.load(download=False)  # unpacks the three missing files only
    assert (raw / "train-images-idx3-ubyte").read_bytes() == mine["train-images-idx3-ubyte"]


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        bdata.load("cifar")


# ---------------------------------------------------------------- download over local HTTP

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_mnist(tmp_path, monkeypatch):
    """Serve a tiny MNIST as .gz files on 127.0.0.1 and point torchvision's MNIST at it."""
    served = tmp_path / "served"
    files = tiny_idx_set(n_train=16, n_test=8)
    write_raw(served, files, gz=True)
    resources = [(f"{name}.gz", hashlib.md5((served / f"{name}.gz").read_bytes()).hexdigest())
                 for name in files]
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(tvd.MNIST, "mirrors", [f"http://127.0.0.1:{server.server_address[1]}/"])
    monkeypatch.setattr(tvd.MNIST, "resources", resources)
    bdata._load_cached.cache_clear()
    yield served, files
    server.shutdown()
    bdata._load_cached.cache_clear()


def test_download_over_local_http(isolated_data, http_mnist):
    _, files = http_mnist
    root = isolated_data / "dl"
    ds = bdata.load("mnist", root=root)
    assert ds.x_train.shape == (16, 1, 28, 28) and ds.x_test.shape == (8, 1, 28, 28)
    assert ds.classes == tuple("0123456789")
    raw = root / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(files)  # no .gz or temp files left
    expected = torch.tensor(list(files["train-labels-idx1-ubyte"][8:]))
    assert torch.equal(ds.y_train, expected)


def test_download_with_bad_checksum_fails_cleanly(isolated_data, http_mnist):
    served, _ = http_mnist
    gz = served / "t10k-labels-idx1-ubyte.gz"
    gz.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + b"\x01\x02\x09"))
    root = isolated_data / "dl"
    with pytest.raises(bdata.DataNotFoundError, match="Could not download t10k-labels"):
        bdata.load("mnist", root=root)
    raw = root / "MNIST" / "raw"
    names = [p.name for p in raw.iterdir()] if raw.exists() else []
    assert "t10k-labels-idx1-ubyte" not in names
    assert not [n for n in names if n.startswith(".")]


def test_cli_fetch_reports_missing_data(isolated_data, capsys):
    assert bdata.main(["fetch", "--no-download"]) == 1
    assert "No copy of fashion-mnist found" in capsys.readouterr().err


def test_cli_fetch_prepares_data(isolated_data, capsys):
    write_raw(isolated_data / "debian", tiny_idx_set(), gz=True)
    assert bdata.main(["fetch", "fashion-mnist", "--no-download"]) == 0
    assert "ready in" in capsys.readouterr().out
