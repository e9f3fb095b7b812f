# Stage 1: each raw exposure to its count-rate images. params carry exactly the
# parameters and reference choices the products depend on, and the reference files the
# cache selects for the exposure are inputs, so Snakemake reruns an exposure when one of
# them changes, and only then.


rule detector1:
    input:
        uncal=uncal_file,
        references=detector1_references,
    output:
        **detector1_outputs(),
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
