"""Turning what a client uploads into files in the server's own folder, and choosing the record among them.

The server never opens a path the client names. Uploaded files (and the members of an uploaded zip)
are written under names the server derives from the client's file names: the last path component
only, with anything but letters, digits, ``.``, ``_`` and ``-`` replaced, so nothing lands outside
the entry's folder. A zip member whose path would leave its folder (``../x``, ``/etc/x``, ``C:\\x``)
refuses the whole archive (zip-slip). A WFDB header is read only after checking that every signal
file it names is a plain file name among the uploaded files, since the header, not the client,
names those files. Counts and sizes are bounded (the request size itself by the server's body
limit), so an archive bomb is refused rather than unpacked.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

from cardiolens.errors import CardiolensError, RecordError

ANNOTATION_SUFFIXES = {".atr", ".qrs", ".ann", ".ecg", ".pu", ".pu0", ".pu1"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_JUNK = ("__MACOSX/", ".DS_Store", "Thumbs.db")


class UploadError(CardiolensError):
    """An upload the server refuses, with the HTTP status to answer (400 bad request, 413 too large)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class UploadLimits:
    """Bounds on one upload.

    Attributes:
        max_bytes: bytes of one request (files together), and of an archive once unpacked.
        max_files: files in one upload, counting the members of a zip.
        max_samples: samples per lead of a record.
        max_values: samples of all leads together.
        min_fs, max_fs: sampling rates accepted, whether sent with the upload or read from the file
            (pulse detection needs about 18 Hz; a rate far outside ECG/PPG practice is a wrong header).
        max_duration_s: length of a record; the models resample to a few hundred Hz, so a long
            record at a low rate would otherwise cost gigabytes however few samples it holds.
    """

    max_bytes: int = 64 * 1024 * 1024
    max_files: int = 32
    max_samples: int = 2_000_000
    max_values: int = 16_000_000
    min_fs: float = 20.0
    max_fs: float = 100_000.0
    max_duration_s: float = 4 * 3600.0


def safe_name(client_name: str | None) -> str:
    """A file name of the server's making from the name a client sent: its last component, plain characters.

    Raises:
        UploadError: nothing usable is left (empty, ``.``, ``..``, a hidden file).
    """
    raw = (client_name or "").strip()
    last = PureWindowsPath(PurePosixPath(raw).name).name  # drops folders written with / or \
    name = _UNSAFE.sub("_", last)[:128]
    if not name or name.startswith(".") or set(name) <= {"_", "."}:
        raise UploadError(f"file name {raw!r} is not usable: send a plain file name such as record.hea")
    return name


def _member_leaves_folder(name: str) -> bool:
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return True
    parts = re.split(r"[\\/]+", name)
    return ".." in parts


def save_files(files: list[tuple[str | None, BinaryIO]], folder: Path, limits: UploadLimits) -> list[Path]:
    """Write uploaded files into ``folder`` (unpacking a ``.zip``) and return the paths written.

    Args:
        files: (client file name, readable binary stream) of each uploaded file.
        folder: the entry's empty upload folder (server-made).
        limits: size and count bounds.

    Raises:
        UploadError: no file, too many, a name clash, too large once unpacked, an unsafe zip member,
            a corrupt archive.
    """
    if not files:
        raise UploadError("no file uploaded: choose a record (WFDB .hea with its .dat/.mat, a zip, CSV or NumPy)")
    if len(files) > limits.max_files:
        raise UploadError(f"{len(files)} files uploaded; at most {limits.max_files} at once", 413)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    total = 0
    for client_name, stream in files:
        name = safe_name(client_name)
        target = folder / name
        if target.exists():
            raise UploadError(f"two uploaded files are both named {name!r}")
        total += _copy(stream, target, limits.max_bytes - total, name)
        written.append(target)
    archives = [p for p in written if p.suffix.lower() == ".zip"]
    if archives:
        if len(written) > 1:
            raise UploadError("upload either one zip archive or the record's files, not both")
        archive = archives[0]
        written = _unzip(archive, folder, limits)
        archive.unlink()
    return written


def _copy(stream: BinaryIO, target: Path, budget: int, name: str) -> int:
    size = 0
    with open(target, "xb") as out:
        while block := stream.read(1 << 20):
            size += len(block)
            if size > budget:
                raise UploadError(f"{name}: the upload is larger than the server's limit", 413)
            out.write(block)
    if size == 0:
        raise UploadError(f"{name}: the file is empty")
    return size


def _unzip(archive: Path, folder: Path, limits: UploadLimits) -> list[Path]:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError):
        raise UploadError(f"{archive.name}: not a readable zip archive") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        for m in members:  # refuse the whole archive before writing anything from it
            if _member_leaves_folder(m.filename):
                raise UploadError(f"{archive.name}: member {m.filename!r} points outside the archive's folder; refused")
        members = [m for m in members if not any(j in m.filename for j in _JUNK) and not m.filename.startswith("._")]
        if not members:
            raise UploadError(f"{archive.name}: the archive holds no files")
        if len(members) > limits.max_files:
            raise UploadError(f"{archive.name}: {len(members)} files in the archive; at most {limits.max_files}", 413)
        declared = sum(m.file_size for m in members)
        if declared > limits.max_bytes:
            raise UploadError(
                f"{archive.name}: {declared / 2**20:.0f} MiB once unpacked; "
                f"the limit is {limits.max_bytes / 2**20:.0f} MiB",
                413,
            )
        written: list[Path] = []
        budget = limits.max_bytes
        for m in members:
            name = safe_name(m.filename)
            target = folder / name
            if target.exists():
                raise UploadError(f"{archive.name}: two members are both named {name!r} (one record per archive)")
            try:
                with zf.open(m) as src:
                    budget -= _copy(src, target, budget, name)  # counts real bytes: sizes in the archive may lie
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError) as exc:
                raise UploadError(f"{archive.name}: cannot unpack {m.filename!r} ({exc})") from None
            written.append(target)
    return written


def choose_record(paths: list[Path]) -> Path:
    """The file to read among the uploaded ones: the one header, or the one signal file.

    A WFDB header is checked first: every signal file it names must be a plain name among the
    uploaded files (and a multi-segment record is refused), so reading it opens nothing else.

    Raises:
        UploadError: several records, a data file without its header, a header without its data file.
        RecordError: a header that is not a WFDB header.
    """
    headers = [p for p in paths if p.suffix.lower() == ".hea"]
    if len(headers) > 1:
        names = ", ".join(sorted(p.name for p in headers))
        raise UploadError(f"{len(headers)} headers uploaded ({names}): upload one record at a time")
    if headers:
        _check_header_files(headers[0], {p.name for p in paths})
        return headers[0]
    signals = [p for p in paths if p.suffix.lower() not in ANNOTATION_SUFFIXES]
    dat = [p for p in signals if p.suffix.lower() == ".dat"]
    if dat:
        raise UploadError(
            f"{dat[0].name} is a WFDB signal file without its .hea header: upload the header together with it "
            "(select both files, or a zip holding both)"
        )
    if not signals:
        raise UploadError("only annotation files were uploaded: add the record's .hea and signal file")
    if len(signals) > 1:
        names = ", ".join(sorted(p.name for p in signals))
        raise UploadError(f"{len(signals)} files uploaded ({names}) and no .hea header: upload one record at a time")
    return signals[0]


def _check_header_files(hea: Path, uploaded: set[str]) -> None:
    from cardiolens.io.wfdb_reader import read_header  # reads this one file, which is ours

    header = read_header(hea)
    if getattr(header, "seg_name", None) is not None:
        raise RecordError("multi-segment WFDB records are not supported by the web app", hea.name)
    for name in dict.fromkeys(header.file_name or []):
        if name != safe_name(name) or name.startswith("."):
            raise UploadError(f"{hea.name} names the signal file {name!r}, which is not a plain file name; refused")
        if name not in uploaded:
            raise UploadError(
                f"{hea.name} names the signal file {name}, which was not uploaded: upload the header together "
                f"with {name} (select both files, or a zip holding both)"
            )
