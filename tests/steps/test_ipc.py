"""ipc against jwst.ipc.ipc_corr on identical arrays (2-D and per-pixel 4-D kernels)."""

from __future__ import annotations

import numpy as np
import pytest

from webbcal.steps import ipc


@pytest.mark.parametrize("kernel_ndim", [2, 4])
@pytest.mark.parametrize("xstart,ystart", [(1, 1), (2030, 1000)])
def test_matches_jwst_ipc(kernel_ndim, xstart, ystart):
    from jwst.ipc import ipc_corr
    from stdatamodels.jwst import datamodels

    rng = np.random.default_rng(9)
    ny, nx = 32, 18
    data = rng.normal(1000, 100, (2, 3, ny, nx)).astype(np.float32)
    if kernel_ndim == 2:
        kernel = -0.005 * rng.random((3, 3)).astype(np.float32)
        kernel[1, 1] = 1.03
    else:
        kernel = (-0.005 * rng.random((3, 3, 1040, 2048), dtype=np.float32))  # covers both subarrays
        kernel[1, 1] = 1.03

    model = datamodels.RampModel(data=data.copy())
    model.meta.instrument.name = "NIRCAM"
    model.meta.instrument.detector = "NRCA1"
    model.meta.exposure.nframes, model.meta.exposure.groupgap = 1, 0
    model.meta.exposure.nints, model.meta.exposure.ngroups = 2, 3
    model.meta.exposure.readpatt = "RAPID"
    sub = model.meta.subarray
    sub.xstart, sub.ystart, sub.xsize, sub.ysize = xstart, ystart, nx, ny
    expected = ipc_corr.ipc_correction(model, datamodels.IPCModel(data=kernel)).data

    got = data.copy()
    margins = ipc.reference_margins(xstart - 1, ystart - 1, nx, ny)
    ipc.correct_ipc(got, ipc.kernel_for_subarray(kernel, xstart - 1, ystart - 1, nx, ny), margins)
    np.testing.assert_array_equal(got, expected)
    if xstart == 1:
        np.testing.assert_array_equal(got[..., :4, :], data[..., :4, :])  # reference rows untouched
        assert not np.array_equal(got[..., 4:, 4:], data[..., 4:, 4:])


def test_skipped_by_default():
    assert ipc.SPEC.skip is True
