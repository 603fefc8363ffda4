# Stage 6: CanItEdit. Sample edits per target, run each with the hidden tests in
# the sandbox, score pass@k per problem and instruction kind.


rule eval_generate:
    input:
        benchmark="results/benchmark/canitedit.jsonl",
        model=student_model_input,
    output:
        "results/evaluation/{target}/completions.jsonl",
    params:
        model=target_params,
        problems=config["evaluation"]["problems"],
        samples=config["evaluation"]["samples"],
        sampling=config["evaluation"]["sampling"],
    threads: target_threads
    resources:
        gpu=target_gpus,
        mem_mb=target_mem_mb,
    log:
        "logs/evaluation/{target}/generate.log",
    conda:
        "../envs/evaluation.yaml"
    script:
        "../scripts/eval_generate.py"


rule eval_execute:
    input:
        completions="results/evaluation/{target}/completions.jsonl",
        benchmark="results/benchmark/canitedit.jsonl",
    output:
        "results/evaluation/{target}/executions.jsonl",
    params:
        timeout_s=config["evaluation"]["timeout_s"],
        memory_mb=config["evaluation"]["memory_mb"],
    threads: config["evaluation"]["workers"]
    log:
        "logs/evaluation/{target}/execute.log",
    conda:
        "../envs/evaluation.yaml"
    script:
        "../scripts/eval_execute.py"


rule eval_score:
    input:
        expand("results/evaluation/{target}/executions.jsonl", target=TARGETS),
    output:
        summary="results/report/summary.md",
        csv=report(
            "results/report/summary.csv",
            caption="../report/summary_csv.rst",
            category="Evaluation",
            subcategory="CanItEdit pass@1",
            labels={"result": "all splits (CSV download)"},
        ),
        per_problem="results/report/per_problem.csv",
        chart=report(
            "results/report/pass_at_1.png",
            caption="../report/pass_at_1.rst",
            category="Evaluation",
            subcategory="CanItEdit pass@1",
            labels={"result": "pass@1 chart"},
        ),
    params:
        k=config["evaluation"]["k"],
    log:
        "logs/evaluation/score.log",
    conda:
        "../envs/evaluation.yaml"
    script:
        "../scripts/eval_score.py"
