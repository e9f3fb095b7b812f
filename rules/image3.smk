# Stage 3 imaging: each image3 association's cal files to one mosaic (i2d), its source
# catalog and segmentation map, and a {mosaic}_crf/ directory with one crf per member. The
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
        cat=product("{mosaic}_cat.ecsv"),
        segm=product("{mosaic}_segm.fits"),
        crf=directory(product("{mosaic}_crf")),
    params:
        steps=image3_step_params(),
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
