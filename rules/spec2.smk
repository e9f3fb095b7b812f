# Stage 2 WFSS spectroscopy: each spec2 association's grism rate, with the source catalog
# Image3 made from the direct image it is paired with, to the slit cut-outs (cal) and the
# 1-D spectra (x1d). The inputs are the association's members, so the DAG runs
# direct uncal -> rate -> cal -> catalog and grism uncal -> rate -> (+ catalog) cal + x1d.


# A grism exposure's cal comes from spec2; image2 makes the cal of every other exposure
# (for those, spec2's inputs name a file no rule makes, so it does not apply).
ruleorder: spec2 > image2


rule spec2:
    input:
        asn=spec2_association,
        rate=spec2_rate,
        catalog=spec2_catalog,
        references=spec2_references,
    output:
        **spec2_outputs(),
    params:
        steps=spec2_step_params(),
        refs_dir=references_dir(),
    log:
        log_file("spec2/{exposure}.log"),
    conda:
        "../envs/webbcal.yaml"
    threads: 1
    resources:
        mem_mb=spec2_mem_mb,
        runtime=20,
    script:
        "../scripts/spec2.py"
