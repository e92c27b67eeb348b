"""Fashion-MNIST and MNIST as in-memory tensors, found offline where possible.

``load(name)`` looks for the four IDX files in this order and stops at the
first place that has them:

1. ``root=`` if given, else the directory in the environment variable ``BNLAB_DATA``;
2. the repository's ``data/`` folder;
3. Debian's package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``),
   whose ``.gz`` files are unpacked once into the folder of step 1 or 2;
4. a download with torchvision (needs internet; checksummed by torchvision).

Files are laid out as torchvision expects (``<root>/FashionMNIST/raw/…``) and
parsed by torchvision. Nothing that already exists in a data folder is ever
overwritten, and new files appear only complete (written to a temporary file,
then renamed). Run ``python -m bnlab.data fetch`` to prepare data ahead of class.
"""
from __future__ import annotations

import argparse
import errno
import gzip
import hashlib
import os
import sys
import tempfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.error import URLError

import torch

__all__ = ["Dataset", "DataError", "DataNotFoundError", "DataRootError", "load", "fetch", "find", "DATASETS"]

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class _Spec:
    torchvision_class: str  # name of the class in torchvision.datasets
    classes: tuple[str, ...]
    debian_dir: Path | None  # where a Debian package puts the .gz files
    debian_package: str | None
    sha256: dict[str, str] | None  # of the *decompressed* files, for unpacking checks


DATASETS: dict[str, _Spec] = {
    "fashion-mnist": _Spec(
        torchvision_class="FashionMNIST",
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        debian_dir=DEBIAN_FASHION_MNIST,
        debian_package="dataset-fashion-mnist",
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    ),
    "mnist": _Spec(
        torchvision_class="MNIST",
        classes=tuple(str(d) for d in range(10)),
        debian_dir=None,
        debian_package=None,
        sha256=None,
    ),
}


class DataError(RuntimeError):
    """A data file is missing, truncated or corrupt; the message says how to fix it."""


class DataNotFoundError(DataError, FileNotFoundError):
    """No copy of the dataset was found anywhere bnlab looks."""


class DataRootError(DataError):
    """The data folder cannot take the files (it is a file, read-only or full); another ``root`` fixes it."""


@dataclass(frozen=True)
class Dataset:
    """A dataset held in memory.

    Attributes:
        x_train: (N_train, 1, 28, 28) float32 in [0, 1].
        y_train: (N_train,) int64 class indices.
        x_test:  (N_test, 1, 28, 28) float32 in [0, 1].
        y_test:  (N_test,) int64 class indices.
        classes: the class names, indexed by label.
        name:    "fashion-mnist" or "mnist".
        source:  the folder the IDX files were read from.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    name: str
    source: Path

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_features(self) -> int:
        """Number of input values per example (784 for 28×28 images)."""
        return int(self.x_train[0].numel())

    def to(self, device: str | torch.device) -> "Dataset":
        """A copy whose tensors live on ``device``."""
        return Dataset(self.x_train.to(device), self.y_train.to(device), self.x_test.to(device),
                       self.y_test.to(device), self.classes, self.name, self.source)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}: train {tuple(self.x_train.shape)}, "
                f"test {tuple(self.x_test.shape)}, {self.num_classes} classes)")


# --------------------------------------------------------------------------- where to look

def repo_data_dir() -> Path:
    """The ``data/`` folder of the source checkout (or a user cache when bnlab is installed)."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").exists():
        return checkout / "data"
    return Path.home() / ".cache" / "bnlab" / "data"


def _spec(name: str) -> _Spec:
    if not isinstance(name, str):
        raise TypeError(f"name must be a dataset name (a str), one of {sorted(DATASETS)}; got {type(name).__name__}.")
    key = name.lower().replace("_", "-")
    if key == "fashionmnist":
        key = "fashion-mnist"
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {sorted(DATASETS)}")
    return DATASETS[key]


def _canonical(name: str) -> str:
    spec = _spec(name)
    return next(k for k, v in DATASETS.items() if v is spec)


def _roots(root: str | os.PathLike | None) -> list[Path]:
    """Data roots in search order: explicit root or $BNLAB_DATA, then the repo's data/."""
    roots = []
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder path (str or pathlib.Path), got {type(root).__name__}; "
                        "e.g. load(root='~/bnlab-data'), or None to search the usual places.")
    first = root if root is not None else os.environ.get("BNLAB_DATA") or None
    if first is not None:
        roots.append(Path(first).expanduser())
    repo = repo_data_dir()
    if repo not in roots:
        roots.append(repo)
    return roots


def _raw_dir(root: Path, spec: _Spec) -> Path:
    return root / spec.torchvision_class / "raw"


def _has_all(folder: Path) -> bool:
    return all((folder / f).is_file() for f in FILES)


def find(name: str = "fashion-mnist", root: str | os.PathLike | None = None) -> Path | None:
    """The data root that already holds all four unpacked files of ``name``, or None.

    Raises:
        TypeError: ``name`` not a str, or ``root`` not a path.
        ValueError: an unknown dataset name (see ``DATASETS``).
    """
    spec = _spec(name)
    for r in _roots(root):
        if _has_all(_raw_dir(r, spec)):
            return r
    return None


# --------------------------------------------------------------------------- checks

def _expected_idx_size(path: Path) -> int:
    """File size implied by an IDX header (magic 0x000008NN, then NN dimension sizes)."""
    with open(path, "rb") as fh:
        head = fh.read(4)
        if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08:
            raise DataError(f"{path} is not an IDX file of unsigned bytes (bad magic number {head!r}).")
        ndim = head[3]
        dims_raw = fh.read(4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise DataError(f"{path} is truncated inside its header.")
    dims = [int.from_bytes(dims_raw[4 * i:4 * i + 4], "big") for i in range(ndim)]
    n = 1
    for d in dims:
        n *= d
    return 4 + 4 * ndim + n


def _check_file(path: Path) -> None:
    expected = _expected_idx_size(path)
    actual = path.stat().st_size
    if actual != expected:
        raise DataError(
            f"{path} is {'truncated' if actual < expected else 'too long'}: its header promises "
            f"{expected} bytes, the file has {actual}."
        )


def _fix_hint(raw: Path, name: str) -> str:
    return (f"Delete the folder {raw} (bnlab never overwrites your files) and run "
            f"`python -m bnlab.data fetch {name}` to unpack or download a fresh copy.")


# --------------------------------------------------------------------------- getting files

def _atomic_write_from(src_stream, dest: Path, sha256: str | None, what: str) -> None:
    """Copy a stream to ``dest`` through a temporary file; never overwrite ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = src_stream.read(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
        if sha256 is not None and digest.hexdigest() != sha256:
            raise DataError(f"{what} does not hold the expected content (SHA-256 mismatch).")
        _check_file(tmp)
        if dest.exists():  # someone else finished first: keep theirs
            return
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


# errno values that mean "this folder cannot be written", not "the source is damaged"
_WRITE_ERRNOS = frozenset(getattr(errno, n) for n in ("EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT", "ENOTDIR",
                                                       "EEXIST", "EISDIR") if hasattr(errno, n))


def _root_problem(raw: Path, err: OSError) -> DataRootError:
    """The data root cannot take the files: say which folder, why, and to pick another root."""
    blocker = next((p for p in (raw, *raw.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        why = f"{blocker} is a file, not a folder"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = f"{blocker or raw} is not writable ({err.strerror})"
    else:
        why = f"writing there failed: {err.strerror or err}"
    return DataRootError(
        f"Cannot write the dataset into {raw}: {why}. The source copy is fine; choose a writable data "
        f"folder: load(..., root='some/writable/folder'), `python -m bnlab.data fetch --root FOLDER`, or "
        f"set BNLAB_DATA to one."
    )


def _ensure_writable(raw: Path) -> None:
    """Create ``raw`` and write a probe file in it, or raise ``_root_problem`` before any unpacking."""
    try:
        raw.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=raw)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise _root_problem(raw, err) from err


def _unpack_debian(spec: _Spec, name: str, raw: Path) -> None:
    assert spec.debian_dir is not None
    _ensure_writable(raw)
    for f in FILES:
        dest = raw / f
        if dest.exists():
            continue
        src = spec.debian_dir / f"{f}.gz"
        try:
            with gzip.open(src, "rb") as stream:
                _atomic_write_from(stream, dest, spec.sha256.get(f) if spec.sha256 else None, str(src))
        except OSError as err:
            if err.errno in _WRITE_ERRNOS and getattr(err, "filename", None) != str(src):
                raise _root_problem(raw, err) from err
            raise _source_damaged(spec, src, err) from err
        except (EOFError, zlib.error, DataError) as err:
            raise _source_damaged(spec, src, err) from err


def _source_damaged(spec: _Spec, src: Path, err: Exception) -> DataError:
    return DataError(
        f"Could not unpack {src}: {err}. The system copy looks damaged: reinstall it with "
        f"`sudo apt-get install --reinstall {spec.debian_package}`."
    )


def _download(spec: _Spec, name: str, raw: Path) -> None:
    """Download with torchvision's mirrors and MD5 checks, then move files into ``raw``."""
    import torchvision.datasets as tvd
    from torchvision.datasets.utils import download_and_extract_archive

    cls = getattr(tvd, spec.torchvision_class)
    _ensure_writable(raw)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=raw) as tmp:
        for filename, md5 in cls.resources:
            target = filename[:-3] if filename.endswith(".gz") else filename
            if (raw / target).exists():
                continue
            errors = []
            for mirror in cls.mirrors:
                url = f"{mirror}{filename}"
                try:
                    download_and_extract_archive(url, download_root=tmp, filename=filename, md5=md5)
                    break
                except (URLError, OSError, RuntimeError) as err:
                    errors.append(f"{url}: {err}")
            else:
                raise DataNotFoundError(
                    f"Could not download {filename} for {name}:\n  " + "\n  ".join(errors)
                )
            with open(Path(tmp) / target, "rb") as stream:
                _atomic_write_from(stream, raw / target, None, f"downloaded {filename}")


def _not_found(name: str, spec: _Spec, roots: list[Path], download_error: str | None) -> DataNotFoundError:
    looked = [str(_raw_dir(r, spec)) for r in roots]
    if spec.debian_dir is not None:
        looked.append(f"{spec.debian_dir} (Debian package {spec.debian_package})")
    fixes = []
    if spec.debian_package:
        fixes.append(f"sudo apt-get install {spec.debian_package}")
    fixes.append(f"python -m bnlab.data fetch {name}   (downloads with torchvision; needs internet)")
    msg = (f"No copy of {name} found. Looked in:\n  - " + "\n  - ".join(looked))
    if download_error:
        msg += f"\nThe download failed: {download_error}"
    msg += "\nFix it with one of:\n  " + "\n  ".join(fixes)
    msg += "\nor put the four IDX files in one of the folders above (or point BNLAB_DATA at them)."
    return DataNotFoundError(msg)


def fetch(name: str = "fashion-mnist", root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Make sure ``name`` is unpacked in a data root and return that root.

    Searches as ``load`` does; unpacks Debian's copy or downloads only what is missing.

    Raises:
        TypeError: ``name`` not a str, or ``root`` not a path.
        ValueError: an unknown dataset name (see ``DATASETS``).
        DataNotFoundError: no copy found and none downloaded (``download`` False, or it failed); the
            message lists the places searched and the fix.
        DataRootError: the data folder cannot take the files (a file, read-only or full).
        DataError: Debian's copy is damaged, or a downloaded file fails its checks.
    """
    name = _canonical(name)
    spec = _spec(name)
    found = find(name, root)
    if found is not None:
        return found
    roots = _roots(root)
    target = roots[0]
    raw = _raw_dir(target, spec)
    if spec.debian_dir is not None and all((spec.debian_dir / f"{f}.gz").is_file() for f in FILES):
        _unpack_debian(spec, name, raw)
        return target
    download_error = None
    if download:
        try:
            _download(spec, name, raw)
            return target
        except DataRootError:
            raise
        except DataError as err:
            download_error = str(err)
        finally:
            try:  # leave no empty folders behind after a failed download
                raw.rmdir()
                raw.parent.rmdir()
            except OSError:
                pass
    raise _not_found(name, spec, roots, download_error)


# --------------------------------------------------------------------------- loading

def _read_split(root: Path, spec: _Spec, name: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    import torchvision.datasets as tvd

    raw = _raw_dir(root, spec)
    prefix = "train" if train else "t10k"
    for f in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"):
        try:
            _check_file(raw / f)
        except DataError as err:
            raise DataError(f"{err} {_fix_hint(raw, name)}") from err
    cls = getattr(tvd, spec.torchvision_class)
    try:
        ds = cls(root=str(root), train=train, download=False)
    except Exception as err:  # torchvision's parser: report which folder and how to fix
        raise DataError(f"torchvision could not read {raw}: {err}. {_fix_hint(raw, name)}") from err
    images, labels = ds.data, ds.targets
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.shape[0] != labels.shape[0]:
        raise DataError(f"{raw} holds images of shape {tuple(images.shape)} and "
                        f"{labels.shape[0]} labels; expected (N, 28, 28) and N labels. {_fix_hint(raw, name)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= len(spec.classes)):
        raise DataError(f"{raw} has labels outside 0..{len(spec.classes) - 1}. {_fix_hint(raw, name)}")
    x = images.to(torch.float32).div_(255.0).unsqueeze(1)
    return x, labels.to(torch.int64)


@lru_cache(maxsize=4)
def _load_cached(name: str, root: Path) -> Dataset:
    spec = _spec(name)
    x_train, y_train = _read_split(root, spec, name, train=True)
    x_test, y_test = _read_split(root, spec, name, train=False)
    return Dataset(x_train, y_train, x_test, y_test, spec.classes, name, _raw_dir(root, spec))


def load(name: str = "fashion-mnist", root: str | os.PathLike | None = None,
         download: bool = True) -> Dataset:
    """Load a dataset into memory (finding, unpacking or downloading it first if needed).

    Args:
        name: ``"fashion-mnist"`` (default, works offline) or ``"mnist"`` (needs internet once).
        root: a data folder to search first (default ``$BNLAB_DATA``, then the repo's ``data/``).
        download: allow a torchvision download when no local copy exists.

    Returns:
        A ``Dataset``: ``x_train`` (60000, 1, 28, 28) float32 in [0, 1], ``y_train`` (60000,)
        int64, ``x_test`` (10000, 1, 28, 28), ``y_test`` (10000,), and ``classes``.
        The result is cached per process: treat its tensors as read-only.

    Raises:
        TypeError, ValueError, DataNotFoundError, DataRootError: as ``fetch``.
        DataError: as ``fetch``; also a data file that is truncated, too long or not a valid IDX file,
            or images and labels torchvision cannot read (the message says how to get a fresh copy).
    """
    name = _canonical(name)
    data_root = fetch(name, root, download=download)
    return _load_cached(name, data_root.resolve())


# --------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    """``python -m bnlab.data fetch [NAMES] [--root R] [--no-download]`` or ``where [--root R]``.

    Returns the exit status: 0, or 1 when a dataset could not be prepared (the error is printed).

    Raises:
        SystemExit: a command line argparse refuses (status 2), or ``--help`` (status 0).
    """
    parser = argparse.ArgumentParser(prog="python -m bnlab.data",
                                     description="Prepare the course's datasets ahead of class.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="find, unpack or download a dataset")
    p_fetch.add_argument("names", nargs="*", default=["fashion-mnist"],
                         help=f"datasets to prepare (default fashion-mnist; known: {', '.join(DATASETS)})")
    p_fetch.add_argument("--root", default=None, help="data folder (default $BNLAB_DATA or the repo's data/)")
    p_fetch.add_argument("--no-download", action="store_true", help="never use the network")
    p_where = sub.add_parser("where", help="print where each dataset was found")
    p_where.add_argument("--root", default=None)
    args = parser.parse_args(argv)
    if args.command == "where":
        for name in DATASETS:
            found = find(name, args.root)
            print(f"{name}: {_raw_dir(found, DATASETS[name]) if found else 'not prepared'}")
        return 0
    status = 0
    for name in args.names:
        try:
            ds = load(name, root=args.root, download=not args.no_download)
        except (DataError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            status = 1
            continue
        print(f"{ds} ready in {ds.source}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
