# Stage 5: supervised fine-tuning of each student on the mixed dataset.


rule finetune:
    input:
        "results/dataset/train.jsonl",
    output:
        directory("results/training/{student}/model"),
    params:
        base=student_base_params,
        settings=student_settings,
    log:
        "logs/training/{student}.log",
    threads: 2
    resources:
        gpu=1,
    conda:
        "../envs/training.yaml"
    script:
        "../scripts/finetune.py"
