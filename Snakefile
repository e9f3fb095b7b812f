"""webbcal: the JWST Science Calibration Pipeline as a Snakemake workflow.

    snakemake --cores 2                          # simulate the demo program, calibrate it
    snakemake --cores 2 --configfile my.yaml     # your exposures / parameters (config/README.md)

Rule files, in the order data flows through them:
    rules/common.smk     config validation, input functions, helpers
    rules/simulate.smk   the built-in program, when config names no input_dir (checkpoint)
    rules/detector1.smk  {exposure}_uncal.fits -> {exposure}_rate.fits, _rateints.fits
    rules/image2.smk     {exposure}_rate.fits -> {exposure}_cal.fits, _i2d.fits (imaging)
    rules/image3.smk     image3 association's cal files -> {mosaic}_i2d.fits, _cat.ecsv, _segm.fits
    rules/spec2.smk      spec2 association's grism rate + image3 catalog -> {exposure}_cal.fits, _x1d.fits
    rules/report.smk     a preview PNG beside each product, the run page; `snakemake --report`
"""


from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/simulate.smk"
include: "rules/detector1.smk"
include: "rules/image2.smk"
include: "rules/image3.smk"
include: "rules/spec2.smk"
include: "rules/report.smk"


rule all:
    input:
        all_rate_files,
        all_cal_files,
        all_mosaic_files,
        all_spec2_files,
        all_preview_files,
    default_target: True
