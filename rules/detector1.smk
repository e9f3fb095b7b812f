# Stage 1: each raw exposure to its count-rate images. params carry exactly the
# parameters and reference choices the products depend on, and the reference files the
# cache selects for the exposure are inputs, so Snakemake reruns an exposure when one of
# them changes, and only then.


if not keeps_calibrated_ramp():

    rule detector1:
        input:
            uncal=uncal_file,
            references=detector1_references,
        output:
            rate=product("{exposure}_rate.fits"),
            rateints=product("{exposure}_rateints.fits"),
        params:
            steps=detector1_step_params(),
            refs_dir=references_dir(),
        log:
            log_file("detector1/{exposure}.log"),
        conda:
            "../envs/webbcal.yaml"
        threads: 1
        resources:
            mem_mb=detector1_mem_mb,
            runtime=20,
        script:
            "../scripts/detector1.py"

else:
    # The calibrated ramp is kept: the detector corrections make it (jump not yet run), and
    # the rates are fitted from it, so a jump or ramp_fit change reruns only the fit.

    rule detector1_ramp:
        input:
            uncal=uncal_file,
            references=detector1_ramp_references,
        output:
            ramp=product("{exposure}_ramp.fits"),
        params:
            steps=detector1_ramp_params(),
            refs_dir=references_dir(),
        log:
            log_file("detector1/{exposure}_ramp.log"),
        conda:
            "../envs/webbcal.yaml"
        threads: 1
        resources:
            mem_mb=detector1_mem_mb,
            runtime=20,
        script:
            "../scripts/detector1.py"

    rule detector1:
        input:
            ramp=product("{exposure}_ramp.fits"),
            references=detector1_fit_references,
        output:
            rate=product("{exposure}_rate.fits"),
            rateints=product("{exposure}_rateints.fits"),
        params:
            steps=detector1_fit_params(),
            refs_dir=references_dir(),
        log:
            log_file("detector1/{exposure}.log"),
        conda:
            "../envs/webbcal.yaml"
        threads: 1
        resources:
            mem_mb=detector1_mem_mb,
            runtime=20,
        script:
            "../scripts/detector1.py"
