"""charge_migration against jwst.charge_migration on identical arrays, plus a hand-made case."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from webbcal import dqflags
from webbcal.steps import charge_migration
from webbcal.steps.containers import Ramp

FLAG = dqflags.CHARGELOSS | dqflags.DO_NOT_USE


def test_matches_jwst():
    from jwst.charge_migration.charge_migration import charge_migration as official
    from stdatamodels.jwst import datamodels

    rng = np.random.default_rng(4)
    data = np.cumsum(rng.uniform(0, 4000, (2, 6, 32, 40)), axis=1).astype(np.float32)
    data.ravel()[rng.integers(0, data.size, 60)] = 30000.0  # isolated triggers too
    gdq = np.zeros(data.shape, np.uint8)
    gdq[rng.random(data.shape) < 0.05] = dqflags.DO_NOT_USE
    gdq[rng.random(data.shape) < 0.05] |= dqflags.SATURATED
    model = datamodels.RampModel(data=data.copy(), groupdq=gdq.copy())
    expected = official(model, 25000.0).groupdq
    got = gdq.copy()
    charge_migration.flag_charge_migration(data, got, 25000.0)
    np.testing.assert_array_equal(got, expected)
    assert (got & dqflags.CHARGELOSS).any()


def test_hand_made_neighbours_and_skip():
    data = np.zeros((1, 4, 5, 5), np.float32)
    data[0, 2:, 2, 2] = 30000.0
    ramp = Ramp(data=data, groupdq=np.zeros(data.shape, np.uint8),
                pixeldq=np.zeros((5, 5), np.uint32), meta=fits.Header())
    assert charge_migration.apply(ramp, {}, charge_migration.SPEC.resolve()) == "COMPLETE"
    cross = np.zeros((5, 5), bool)
    cross[2, 1:4] = cross[1:4, 2] = True
    for g in range(4):
        np.testing.assert_array_equal(ramp.groupdq[0, g] == FLAG, cross if g >= 2 else False)
    short = Ramp(data=data[:, :2].copy(), groupdq=np.zeros((1, 2, 5, 5), np.uint8),
                 pixeldq=np.zeros((5, 5), np.uint32), meta=fits.Header())
    assert charge_migration.apply(short, {}, {}) == "SKIPPED"
    assert charge_migration.SPEC.skip and charge_migration.SPEC.defaults() == {"signal_threshold": 25000.0}
