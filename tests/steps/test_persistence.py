"""persistence against jwst.persistence (3.0 flagging version) on identical arrays."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from webbcal import dqflags
from webbcal.steps import persistence
from webbcal.steps.containers import Ramp

EXPSTART, EFFINTTM, TGROUP = 60000.5, 64.4, 10.737


def case():
    rng = np.random.default_rng(12)
    data = np.cumsum(rng.uniform(0, 3000, (3, 6, 16, 20)), axis=1).astype(np.float32)
    gdq = np.zeros(data.shape, np.uint8)
    gdq[0, 3:, 2, 3] = dqflags.SATURATED
    gdq[1, 1:, 5, 5] = dqflags.SATURATED
    gdq[2, 5:, 7, 8] = dqflags.SATURATED
    return data, gdq


@pytest.mark.parametrize("dn_threshold,dnu", [(None, False), (9000.0, True)])
def test_matches_jwst(dn_threshold, dnu):
    from jwst.persistence.persistence import DataSet
    from stdatamodels.jwst import datamodels

    data, gdq = case()
    carried = np.zeros((16, 20))
    carried[9, 9] = persistence.mjd_to_unix(EXPSTART) + 25.0       # window from a past exposure
    carried[10, 10] = persistence.mjd_to_unix(EXPSTART) + 10_000.0  # "starts in the future"
    model = datamodels.RampModel(data=data.copy(), groupdq=gdq.copy())
    model.meta.exposure.start_time = EXPSTART
    model.meta.exposure.integration_time = EFFINTTM
    model.meta.exposure.group_time = TGROUP
    official = DataSet(model, None, 120, dn_threshold, carried.copy(), dnu)
    expected, _ = official.do_all()

    got, windows = gdq.copy(), carried.copy()
    starts = persistence.integration_starts(
        fits.Header({"EXPSTART": EXPSTART, "EFFINTTM": EFFINTTM}), None, 3)
    persistence.flag_persistence(data, got, windows, starts, TGROUP, 120,
                                 dn_threshold=dn_threshold, persistence_dnu=dnu)
    np.testing.assert_array_equal(got, expected.groupdq)
    np.testing.assert_array_equal(windows, official.persistence_array)
    assert (got & dqflags.PERSISTENCE).any()


def test_apply_failed_without_time_and_window_file_roundtrip(tmp_path):
    data, gdq = case()
    header = fits.Header({"EXPSTART": EXPSTART, "EFFINTTM": EFFINTTM, "TGROUP": TGROUP,
                          "DETECTOR": "NRCA1"})
    ramp = Ramp(data=data, groupdq=gdq.copy(), pixeldq=np.zeros((16, 20), np.uint32), meta=header)
    assert persistence.apply(ramp, {}, persistence.SPEC.resolve()) == "FAILED"
    path = tmp_path / "pers.asdf"
    params = persistence.SPEC.resolve({"persistence_time": 1000, "save_persistence": str(path)})
    assert persistence.apply(ramp, {}, params) == "COMPLETE"
    loaded = persistence.load_windows(str(path), "NRCA1", (16, 20), 1000)
    assert loaded[2, 3] > 0 and loaded[0, 0] == 0
    assert persistence.load_windows(str(path), "NRCA1", (16, 20), 999).sum() == 0  # other time
    assert persistence.SPEC.skip
