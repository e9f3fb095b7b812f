# Previews and the report: a small PNG beside each product, and a page of the run's
# parameters and software, all registered with report() so that
#     snakemake --report report.html
# shows them by stage. A preview reads only its product (a mosaic's also its catalog, a
# cal's also its rate), so it reruns exactly when they do.


rule preview_rate:
    input:
        rate=product("{exposure}_rate.fits"),
    output:
        report(
            product("{exposure}_rate.png"),
            caption="../report/rate.rst",
            category="1. Detector1",
            subcategory="rate",
            labels={"exposure": "{exposure}", "product": "rate"},
        ),
    log:
        log_file("preview/{exposure}_rate.log"),
    conda:
        "../envs/webbcal.yaml"
    threads: 1
    resources:
        mem_mb=600,
        runtime=5,
    shell:
        "python -m webbcal.commands.preview {input.rate} -o {output} > {log} 2>&1"


rule preview_cal:
    # The rate is drawn under a grism cal's slit boxes (an imaging cal ignores it).
    input:
        cal=product("{exposure}_cal.fits"),
        rate=product("{exposure}_rate.fits"),
    output:
        report(
            product("{exposure}_cal.png"),
            caption="../report/cal.rst",
            category=cal_category,
            subcategory="cal",
            labels={"exposure": "{exposure}", "product": "cal"},
        ),
    log:
        log_file("preview/{exposure}_cal.log"),
    conda:
        "../envs/webbcal.yaml"
    threads: 1
    resources:
        mem_mb=600,
        runtime=5,
    shell:
        "python -m webbcal.commands.preview {input.cal} --background {input.rate} -o {output} > {log} 2>&1"


rule preview_mosaic:
    input:
        i2d=product("{mosaic}_i2d.fits"),
        cat=product("{mosaic}_cat.ecsv"),
    output:
        report(
            product("{mosaic}_i2d.png"),
            caption="../report/mosaic.rst",
            category="4. Image3",
            subcategory="mosaic",
            labels={"product": "{mosaic}"},
        ),
    log:
        log_file("preview/{mosaic}_i2d.log"),
    conda:
        "../envs/webbcal.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m webbcal.commands.preview {input.i2d} --catalog {input.cat} -o {output} > {log} 2>&1"


rule preview_spectra:
    input:
        x1d=product("{spectrum}_x1d.fits"),
    output:
        report(
            product("{spectrum}_x1d.png"),
            caption="../report/x1d.rst",
            category="3. Spec2",
            subcategory="x1d",
            labels={"product": "{spectrum}", "kind": "x1d"},
        ),
    log:
        log_file("preview/{spectrum}_x1d.log"),
    conda:
        "../envs/webbcal.yaml"
    threads: 1
    resources:
        mem_mb=600,
        runtime=5,
    shell:
        "python -m webbcal.commands.preview {input.x1d} -o {output} > {log} 2>&1"


localrules:
    run_info,


rule run_info:
    # Reruns when a parameter or an installed version changes: the page must be current.
    # A local one-liner: the versions are those of the environment running the workflow.
    output:
        report(
            product("report/run_info.html"),
            caption="../report/run_info.rst",
            category="0. Run",
            subcategory="parameters and software",
            labels={"page": "run_info"},
        ),
    params:
        parameters=run_parameters(),
        software=software_versions(),
    log:
        log_file("run_info.log"),
    run:
        write_run_info(output[0], json.loads(params.parameters), params.software)
