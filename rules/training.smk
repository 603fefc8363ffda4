# Stage 5: supervised fine-tuning of each student on the mixed dataset. The
# script starts `accelerate launch` itself when a student asks for several GPUs.
# Checkpoints (results/training/{student}/checkpoints) are not outputs on
# purpose: Snakemake deletes a failed job's outputs, and a rerun resumes from them.


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
    threads: training_threads
    resources:
        gpu=training_gpu_resource,
        gres=training_gres,
        nodes=training_nodes,
    conda:
        "../envs/training.yaml"
    script:
        "../scripts/finetune.py"
