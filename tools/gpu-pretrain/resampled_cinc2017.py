"""Write a 100 Hz copy of CinC 2017's training2017 so that the data fit the 64 MiB transfer to a GPU machine.

The copy keeps the record ids and REFERENCE.csv, so the patient-grouped split of `cardiolens pretrain`
(seeded by record id) is the same as on the 300 Hz originals. Each record is resampled with
`cardiolens.signal.resample.resample`, the function the window cache uses, and written as WFDB format 16
at 1000 units/mV (1 uV steps).

    .venv/bin/python tools/gpu-pretrain/resampled_cinc2017.py SRC/training2017 DST/training2017
"""

import sys
from pathlib import Path

import numpy as np
import wfdb
from tqdm import tqdm

from cardiolens.datasets.cinc2017 import CinC2017
from cardiolens.signal.resample import resample

FS = 100.0


def main(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    db = CinC2017(src)
    (dst / "REFERENCE.csv").write_text((db.root / "REFERENCE.csv").read_text())
    for rid in tqdm(list(db.records["record_id"]), desc="records", unit="rec"):
        record = db.load(rid)
        x = resample(record.signal.astype(np.float64), record.fs, FS)
        wfdb.wrsamp(
            rid,
            fs=FS,
            units=list(record.units),
            sig_name=list(record.leads),
            p_signal=x.T,
            fmt=["16"] * len(record.leads),
            adc_gain=[1000.0] * len(record.leads),
            baseline=[0] * len(record.leads),
            write_dir=str(dst),
        )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
