# Stage 2 imaging: each imaging exposure's rate to its calibrated image (cal) and the
# single-exposure resampled image (i2d). As for Detector1, params carry exactly the
# Image2 parameters and the selected reference files are inputs.


rule image2:
    input:
        rate=product("{exposure}_rate.fits"),
        references=image2_references,
    output:
        cal=product("{exposure}_cal.fits"),
        i2d=product("{exposure}_i2d.fits"),
    params:
        steps=image2_step_params(),
        refs_dir=references_dir(),
    log:
        log_file("image2/{exposure}.log"),
    conda:
        "../envs/webbcal.yaml"
    threads: 1
    resources:
        mem_mb=image2_mem_mb,
        runtime=20,
    script:
        "../scripts/image2.py"
