# The built-in NIRCam program, run when the config names no input_dir. A checkpoint: the
# exposures to calibrate are read from what the simulator wrote, not known in advance.


checkpoint simulate:
    output:
        program=directory(simulation_dir()),
    params:
        settings=simulation_settings(),
        seed=config["simulate"]["seed"],
    log:
        log_file("simulate.log"),
    conda:
        "../envs/webbcal.yaml"
    threads: 1
    resources:
        mem_mb=2000,  # measured 0.9 GB for a full-frame 10-group exposure
        runtime=60,
    script:
        "../scripts/simulate.py"
