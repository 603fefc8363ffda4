# Stage 6: CanItEdit. Sample edits per target, run each with the hidden tests in
# the sandbox, score pass@k per problem and instruction kind.


rule eval_preflight:
    input:
        benchmark="results/benchmark/canitedit.jsonl",
    output:
        report="results/evaluation/preflight.json",
        # Only the excluded problems: generation reads this, so a changed limit reruns no generation.
        excluded="results/evaluation/excluded.json",
    log:
        "logs/evaluation/preflight.log",
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("eval_preflight", config["evaluation"]["workers"])
    resources:
        mem_mb=job_mem_mb("eval_preflight"),
        runtime=job_runtime("eval_preflight"),
    params:
        problems=config["evaluation"]["problems"],
        timeout_s=config["evaluation"]["timeout_s"],
        memory_mb=config["evaluation"]["memory_mb"],
        sandbox=config["sandbox"],
        python=config["evaluation"]["python"],
        reference_failures=config["evaluation"]["reference_failures"],
    script:
        "../scripts/eval_preflight.py"


rule eval_generate:
    input:
        benchmark="results/benchmark/canitedit.jsonl",
        excluded="results/evaluation/excluded.json",
        model=student_model_input,
        preflight=target_preflight,
    output:
        "results/evaluation/{target}/completions.jsonl",
    log:
        "logs/evaluation/{target}/generate.log",
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("eval_generate", target_threads, target_gpus)
    resources:
        gpu=target_gpus,
        mem_mb=job_mem_mb("eval_generate", target_mem_mb, target_gpus),
        runtime=job_runtime("eval_generate", target_gpus),
    params:
        model=target_params,
        problems=config["evaluation"]["problems"],
        samples=config["evaluation"]["samples"],
        sampling=config["evaluation"]["sampling"],
    script:
        "../scripts/eval_generate.py"


rule eval_execute:
    input:
        completions="results/evaluation/{target}/completions.jsonl",
        benchmark="results/benchmark/canitedit.jsonl",
    output:
        "results/evaluation/{target}/executions.jsonl",
    log:
        "logs/evaluation/{target}/execute.log",
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("eval_execute", config["evaluation"]["workers"])
    resources:
        mem_mb=job_mem_mb("eval_execute"),
        runtime=job_runtime("eval_execute"),
    params:
        timeout_s=config["evaluation"]["timeout_s"],
        memory_mb=config["evaluation"]["memory_mb"],
        sandbox=config["sandbox"],
        python=config["evaluation"]["python"],
    script:
        "../scripts/eval_execute.py"


rule eval_score:
    input:
        executions=expand("results/evaluation/{target}/executions.jsonl", target=TARGETS),
        benchmark="results/benchmark/canitedit.jsonl",
        preflight="results/evaluation/preflight.json",
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
        harness="results/report/harness_pass_k.csv",
        chart=report(
            "results/report/pass_at_1.png",
            caption="../report/pass_at_1.rst",
            category="Evaluation",
            subcategory="CanItEdit pass@1",
            labels={"result": "pass@1 chart"},
        ),
    log:
        "logs/evaluation/score.log",
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("eval_score", 1)
    resources:
        mem_mb=job_mem_mb("eval_score"),
        runtime=job_runtime("eval_score"),
    params:
        k=config["evaluation"]["k"],
    script:
        "../scripts/eval_score.py"
