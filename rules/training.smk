# Stage 5: supervised fine-tuning of each student on the mixed dataset. The
# script starts `accelerate launch` itself when a student asks for several GPUs.
# Checkpoints (results/training/{student}/checkpoints) and the trackers' live files
# (results/training/{student}/runs: `tensorboard --logdir results`) are not outputs on
# purpose: Snakemake deletes a failed job's outputs, and a rerun resumes from them.
# Settings that only watch the run (report_to, eval_every, ...) are read from the
# config by the script, not passed as params: changing them reruns nothing.


rule finetune:
    input:
        train="results/dataset/train.jsonl",
        validation="results/dataset/validation.jsonl",
    output:
        directory("results/training/{student}/model"),
    log:
        "logs/training/{student}.log",
    conda:
        "../envs/training.yaml"
    threads: training_threads
    resources:
        gpu=training_gpu_resource,
        gres=training_gres,
        nodes=training_nodes,
        mem_mb=job_mem_mb("finetune", gpus=training_gpus),
        runtime=job_runtime("finetune", training_gpus),
    params:
        base=student_base_params,
        settings=student_settings,
    script:
        "../scripts/finetune.py"
