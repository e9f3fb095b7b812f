# Stage 3 imaging: each image3 association's cal files to one mosaic (i2d) and a
# {mosaic}_crf/ directory with one crf per member; then the mosaic to its source catalog
# and segmentation map (rule source_catalog). The
# inputs are the association's members, so the DAG runs uncal -> rate -> cal -> mosaic.


checkpoint associations:
    # Used only when the config names neither asn_dir nor a simulated program: the
    # associations the official rules make from the exposures' headers.
    input:
        uncal=uncal_directory_for_associations,
    output:
        asn=directory(product("asn")),
    log:
        log_file("associations.log"),
    conda:
        "../envs/webbcal.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python -m webbcal.cli asn generate {input.uncal} -o {output.asn} > {log} 2>&1"


rule image3:
    input:
        asn=image3_association,
        cal=image3_member_cals,
    output:
        i2d=product("{mosaic}_i2d.fits"),
        crf=directory(product("{mosaic}_crf")),
    params:
        steps=image3_mosaic_params(),
        refs_dir=references_dir(),
    log:
        log_file("image3/{mosaic}.log"),
    conda:
        "../envs/webbcal.yaml"
    threads: 1
    resources:
        mem_mb=image3_mem_mb,
        runtime=60,
    script:
        "../scripts/image3.py"


rule source_catalog:
    # Its own job: a source_catalog parameter reruns the catalog (and its readers) only.
    input:
        i2d=product("{mosaic}_i2d.fits"),
    output:
        cat=product("{mosaic}_cat.ecsv"),
        segm=product("{mosaic}_segm.fits"),
    params:
        steps=source_catalog_params(),
        refs_dir=references_dir(),
    log:
        log_file("source_catalog/{mosaic}.log"),
    conda:
        "../envs/webbcal.yaml"
    threads: 1
    resources:
        mem_mb=image3_mem_mb,
        runtime=20,
    script:
        "../scripts/source_catalog.py"
