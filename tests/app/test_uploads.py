"""Uploads: every format the readers take, and every bad upload answered by a 4xx with a message."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import wfdb
from fastapi.testclient import TestClient

from cardiolens.app import AppSettings, UploadLimits, create_app
from cardiolens.io import load_record

from .conftest import ecg_like


def upload(client, *files: tuple[str, bytes], fs: float | None = None):
    data = {"fs": str(fs)} if fs is not None else None
    return client.post("/api/records", files=[("files", (name, body)) for name, body in files], data=data)


@pytest.fixture(scope="module")
def wfdb_files(tmp_path_factory) -> dict[str, bytes]:
    """A 10 s two-lead WFDB record (format 16) written with wfdb.wrsamp, as file name -> bytes."""
    folder = tmp_path_factory.mktemp("wfdb")
    x = ecg_like(10, 250)
    wfdb.wrsamp(
        "rec1",
        fs=250,
        units=["mV", "mV"],
        sig_name=["I", "II"],
        p_signal=np.stack([x, 0.8 * x], axis=1).astype(np.float64),
        fmt=["16", "16"],
        write_dir=str(folder),
    )
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return buf.getvalue()


def test_wfdb_header_and_data_together(client, wfdb_files):
    response = upload(client, *wfdb_files.items())
    assert response.status_code == 201, response.text
    info = response.json()
    assert (info["name"], info["fs"], info["leads"], info["samples"]) == ("rec1", 250.0, ["I", "II"], 2500)
    assert info["format"] == "wfdb"
    # the record the server holds is what load_record reads from the same files
    folder = client.app.state.store.root / info["id"] / "upload"
    assert sorted(p.name for p in folder.iterdir()) == ["rec1.dat", "rec1.hea"]
    view = client.get(f"/api/records/{info['id']}/signal", params={"start": 0, "duration": 2}).json()
    np.testing.assert_allclose(view["leads"][0]["values"], load_record(folder / "rec1.hea").signal[0, :500], atol=1e-4)


def test_wfdb_as_zip_in_a_folder(client, wfdb_files):
    archive = zipped({f"my record/{k}": v for k, v in wfdb_files.items()} | {"__MACOSX/._rec1.hea": b"junk"})
    response = upload(client, ("rec1.zip", archive))
    assert response.status_code == 201, response.text
    assert response.json()["leads"] == ["I", "II"]


def test_csv_and_numpy(client, tmp_path):
    x = ecg_like(8, 200)
    text = "time,II\n" + "\n".join(f"{i / 200:.4f},{v:.5f}" for i, v in enumerate(x))
    csv_info = upload(client, ("trace.csv", text.encode())).json()
    assert csv_info["fs"] == pytest.approx(200.0) and csv_info["leads"] == ["II"] and csv_info["samples"] == x.size
    buf = io.BytesIO()
    np.save(buf, np.stack([x, x * 0.5]))
    npy = upload(client, ("two.npy", buf.getvalue()), fs=200)
    assert npy.status_code == 201, npy.text
    assert npy.json()["samples"] == x.size and len(npy.json()["leads"]) == 2
    missing_rate = upload(client, ("two.npy", buf.getvalue()))
    assert missing_rate.status_code == 422 and "fs" in missing_rate.json()["detail"].lower()


@pytest.mark.realdata
def test_real_cinc2017_record(client, cinc2017_dir: Path):
    hea = sorted(cinc2017_dir.glob("*.hea"))[0]
    mat = hea.with_suffix(".mat")
    response = upload(client, (hea.name, hea.read_bytes()), (mat.name, mat.read_bytes()))
    assert response.status_code == 201, response.text
    info = response.json()
    expected = load_record(hea)
    assert (info["fs"], info["samples"], info["leads"]) == (expected.fs, expected.n_samples, expected.leads)
    result = client.post(f"/api/records/{info['id']}/analysis", json={}).json()
    assert result["beats"]["count"] > 5 and 30 < result["heart_rate"]["median_bpm"] < 200


# -- bad uploads: a 4xx and a message, never a 500 ---------------------------------------------------
def test_header_without_its_data_file(client, wfdb_files):
    response = upload(client, ("rec1.hea", wfdb_files["rec1.hea"]))
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "rec1.dat" in detail and "not uploaded" in detail


def test_data_file_without_header(client, wfdb_files):
    response = upload(client, ("rec1.dat", wfdb_files["rec1.dat"]))
    assert response.status_code == 400 and ".hea" in response.json()["detail"]


def test_files_that_are_not_signals(client):
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    response = upload(client, ("photo.png", png))
    assert response.status_code == 422 and "format" in response.json()["detail"]
    words = upload(client, ("notes.txt", b"hello, this is not a heart signal\nat all\n"))
    assert 400 <= words.status_code < 500 and words.json()["detail"]
    assert upload(client, ("empty.csv", b"")).status_code == 400


def test_header_that_lies_or_reaches_outside(client, wfdb_files):
    truncated = upload(client, ("rec1.hea", wfdb_files["rec1.hea"]), ("rec1.dat", wfdb_files["rec1.dat"][:1000]))
    assert truncated.status_code == 422 and "truncated" in truncated.json()["detail"]
    assert "/tmp" not in truncated.json()["detail"]  # the server's folders are not shown
    outside = wfdb_files["rec1.hea"].replace(b"rec1.dat", b"../../etc/passwd")
    response = upload(client, ("rec1.hea", outside), ("rec1.dat", wfdb_files["rec1.dat"]))
    # refused before any file is opened: by wfdb's header syntax or by the server's own check
    assert response.status_code in (400, 422) and "rec1.hea" in response.json()["detail"]
    not_a_header = upload(client, ("x.hea", b"this is no header\n"), ("x.dat", b"\x00\x01"))
    assert not_a_header.status_code == 422 and "header" in not_a_header.json()["detail"]


def test_zip_slip_is_refused_and_nothing_escapes(client, wfdb_files, tmp_path):
    archive = zipped({"rec1.hea": wfdb_files["rec1.hea"], "../../evil.dat": wfdb_files["rec1.dat"]})
    before = set(client.app.state.store.root.parent.iterdir())
    response = upload(client, ("evil.zip", archive))
    assert response.status_code == 400 and "outside" in response.json()["detail"]
    assert set(client.app.state.store.root.parent.iterdir()) == before
    absolute = zipped({"/etc/evil.hea": wfdb_files["rec1.hea"]})
    assert upload(client, ("abs.zip", absolute)).status_code == 400
    assert upload(client, ("bad.zip", b"PK\x03\x04 not really a zip")).status_code == 400


def test_client_file_names_never_become_paths(client, wfdb_files):
    # a client naming its file ../../x.csv gets it stored as x.csv inside the entry's folder
    x = ecg_like(4, 100)
    text = "\n".join(f"{v:.5f}" for v in x).encode()
    response = upload(client, ("../../x.csv", text), fs=100)
    assert response.status_code == 201, response.text
    folder = client.app.state.store.root / response.json()["id"] / "upload"
    assert [p.name for p in folder.iterdir()] == ["x.csv"]
    assert upload(client, ("..", text), fs=100).status_code == 400


def test_several_records_at_once(client, wfdb_files):
    other = wfdb_files["rec1.hea"].replace(b"rec1", b"rec2")
    response = upload(client, *wfdb_files.items(), ("rec2.hea", other))
    assert response.status_code == 400 and "one record at a time" in response.json()["detail"]
    assert client.post("/api/records").status_code == 422  # no file at all


def test_size_limits(tmp_path, wfdb_files):
    limits = UploadLimits(max_bytes=20_000, max_files=3, max_samples=2000, max_values=10_000)
    app = create_app(AppSettings(store_root=str(tmp_path / "store"), limits=limits, torch_threads=None))
    with TestClient(app) as small:
        big = upload(small, ("big.csv", b"1.0\n" * 10_000))
        assert big.status_code == 413 and "limit" in big.json()["detail"]
        long = upload(small, *wfdb_files.items())  # 2500 samples per lead > 2000
        assert long.status_code == 413 and "longer than the web app takes" in long.json()["detail"]
        many = upload(small, *[(f"f{i}.csv", b"1\n2\n") for i in range(4)])
        assert many.status_code == 413
        bomb = zipped({"rec.csv": b"0.5\n" * 50_000})  # 200 kB unpacked from a few hundred bytes
        assert len(bomb) < 20_000
        refused = upload(small, ("bomb.zip", bomb))
        assert refused.status_code == 413 and "unpacked" in refused.json()["detail"]
        # a body sent without Content-Length is counted as it arrives
        chunked = small.post(
            "/api/records",
            content=iter([b"x" * 15_000, b"x" * 15_000]),
            headers={"content-type": "multipart/form-data; boundary=abc"},
        )
        assert chunked.status_code == 413
        assert list((tmp_path / "store").iterdir()) == []  # refused uploads leave nothing behind


def test_records_expire(tmp_path):
    app = create_app(AppSettings(store_root=str(tmp_path / "store"), ttl_s=0.0, torch_threads=None))
    with TestClient(app) as c:
        x = ecg_like(4, 100)
        info = upload(c, ("a.csv", "\n".join(f"{v:.5f}" for v in x).encode()), fs=100).json()
        gone = c.get(f"/api/records/{info['id']}")
        assert gone.status_code == 404 and "expired" in gone.json()["detail"]
        assert list((tmp_path / "store").iterdir()) == []
