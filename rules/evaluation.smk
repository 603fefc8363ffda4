# Stage 6: evaluation on every benchmark of evaluation.benchmarks. Per benchmark and target: sample
# answers, run each with the hidden tests in the sandbox, score pass@k per problem and instruction
# kind (results/evaluation/{benchmark}/); then one report over all (results/report/).
# CanItEdit keeps its own rules (its coverage pass and harness CSV); the plug-in benchmarks
# (HumanEvalFix, Aider's Exercism set) share the benchmark_* rules.


rule eval_preflight:
    input:
        benchmark="results/benchmark/canitedit.jsonl",
    output:
        report="results/evaluation/canitedit/preflight.json",
        # Only the excluded problems: generation reads this, so a changed limit reruns no generation.
        excluded="results/evaluation/canitedit/excluded.json",
    log:
        "logs/evaluation/canitedit/preflight.log",
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("eval_preflight", config["evaluation"]["workers"])
    resources:
        mem_mb=job_mem_mb("eval_preflight"),
        runtime=job_runtime("eval_preflight"),
    params:
        problems=CANITEDIT["problems"],
        timeout_s=CANITEDIT["timeout_s"],
        memory_mb=config["evaluation"]["memory_mb"],
        sandbox=config["sandbox"],
        python=config["evaluation"]["python"],
        reference_failures=config["evaluation"]["reference_failures"],
    script:
        "../scripts/eval_preflight.py"


rule eval_generate:
    input:
        benchmark="results/benchmark/canitedit.jsonl",
        excluded="results/evaluation/canitedit/excluded.json",
        model=student_model_input,
        preflight=target_preflight,
    output:
        "results/evaluation/canitedit/{target}/completions.jsonl",
    log:
        "logs/evaluation/canitedit/{target}/generate.log",
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("eval_generate", target_threads, target_gpus)
    resources:
        gpu=target_gpus,
        mem_mb=job_mem_mb("eval_generate", target_mem_mb, target_gpus),
        runtime=job_runtime("eval_generate", target_gpus),
    params:
        model=target_params,
        problems=CANITEDIT["problems"],
        samples=CANITEDIT["samples"],
        sampling=CANITEDIT["sampling"],
    script:
        "../scripts/eval_generate.py"


rule eval_execute:
    input:
        completions="results/evaluation/canitedit/{target}/completions.jsonl",
        benchmark="results/benchmark/canitedit.jsonl",
    output:
        "results/evaluation/canitedit/{target}/executions.jsonl",
    log:
        "logs/evaluation/canitedit/{target}/execute.log",
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("eval_execute", config["evaluation"]["workers"])
    resources:
        mem_mb=job_mem_mb("eval_execute"),
        runtime=job_runtime("eval_execute"),
    params:
        timeout_s=CANITEDIT["timeout_s"],
        memory_mb=config["evaluation"]["memory_mb"],
        sandbox=config["sandbox"],
        python=config["evaluation"]["python"],
    script:
        "../scripts/eval_execute.py"


rule eval_score:
    input:
        executions=expand("results/evaluation/canitedit/{target}/executions.jsonl", target=TARGETS),
        benchmark="results/benchmark/canitedit.jsonl",
        preflight="results/evaluation/canitedit/preflight.json",
    output:
        summary="results/evaluation/canitedit/summary.md",
        csv="results/evaluation/canitedit/summary.csv",
        per_problem="results/evaluation/canitedit/per_problem.csv",
        harness="results/evaluation/canitedit/harness_pass_k.csv",
        chart="results/evaluation/canitedit/pass_at_1.png",
    log:
        "logs/evaluation/canitedit/score.log",
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


rule benchmark_preflight:
    input:
        benchmark="results/benchmark/{plugin}.jsonl",
    output:
        report="results/evaluation/{plugin}/preflight.json",
        excluded="results/evaluation/{plugin}/excluded.json",
    log:
        "logs/evaluation/{plugin}/preflight.log",
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("benchmark_preflight", config["evaluation"]["workers"])
    resources:
        mem_mb=job_mem_mb("benchmark_preflight"),
        runtime=job_runtime("benchmark_preflight"),
    params:
        problems=lambda wildcards: PLUGINS[wildcards.plugin]["problems"],
        timeout_s=lambda wildcards: PLUGINS[wildcards.plugin]["timeout_s"],
        memory_mb=config["evaluation"]["memory_mb"],
        sandbox=config["sandbox"],
        python=config["evaluation"]["python"],
        reference_failures=config["evaluation"]["reference_failures"],
    script:
        "../scripts/benchmark_preflight.py"


rule benchmark_generate:
    input:
        benchmark="results/benchmark/{plugin}.jsonl",
        excluded="results/evaluation/{plugin}/excluded.json",
        model=student_model_input,
        preflight=target_preflight,
    output:
        "results/evaluation/{plugin}/{target}/completions.jsonl",
    log:
        "logs/evaluation/{plugin}/{target}/generate.log",
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("benchmark_generate", target_threads, target_gpus)
    resources:
        gpu=target_gpus,
        mem_mb=job_mem_mb("benchmark_generate", target_mem_mb, target_gpus),
        runtime=job_runtime("benchmark_generate", target_gpus),
    params:
        model=target_params,
        settings=plugin_generation_params,
    script:
        "../scripts/benchmark_generate.py"


rule benchmark_execute:
    input:
        completions="results/evaluation/{plugin}/{target}/completions.jsonl",
        benchmark="results/benchmark/{plugin}.jsonl",
    output:
        "results/evaluation/{plugin}/{target}/executions.jsonl",
    log:
        "logs/evaluation/{plugin}/{target}/execute.log",
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("benchmark_execute", config["evaluation"]["workers"])
    resources:
        mem_mb=job_mem_mb("benchmark_execute"),
        runtime=job_runtime("benchmark_execute"),
    params:
        settings=plugin_execution_params,
    script:
        "../scripts/benchmark_execute.py"


# Aider's second try (tries: 2): each failed sample is asked again with its test output, then run.
rule benchmark_retry:
    input:
        executions="results/evaluation/{plugin}/{target}/executions.jsonl",
        benchmark="results/benchmark/{plugin}.jsonl",
        model=student_model_input,
    output:
        "results/evaluation/{plugin}/{target}/retry_completions.jsonl",
    log:
        "logs/evaluation/{plugin}/{target}/retry.log",
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("benchmark_retry", target_threads, target_gpus)
    resources:
        gpu=target_gpus,
        mem_mb=job_mem_mb("benchmark_retry", target_mem_mb, target_gpus),
        runtime=job_runtime("benchmark_retry", target_gpus),
    params:
        model=target_params,
        settings=plugin_generation_params,
    script:
        "../scripts/benchmark_retry.py"


rule benchmark_execute_retry:
    input:
        completions="results/evaluation/{plugin}/{target}/retry_completions.jsonl",
        benchmark="results/benchmark/{plugin}.jsonl",
    output:
        "results/evaluation/{plugin}/{target}/retry_executions.jsonl",
    log:
        "logs/evaluation/{plugin}/{target}/execute_retry.log",
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("benchmark_execute", config["evaluation"]["workers"])
    resources:
        mem_mb=job_mem_mb("benchmark_execute"),
        runtime=job_runtime("benchmark_execute"),
    params:
        settings=plugin_execution_params,
    script:
        "../scripts/benchmark_execute.py"


rule benchmark_score:
    input:
        executions=lambda wildcards: plugin_executions(wildcards, "executions"),
        retries=lambda wildcards: plugin_executions(wildcards, "retry_executions"),
        benchmark="results/benchmark/{plugin}.jsonl",
        preflight="results/evaluation/{plugin}/preflight.json",
    output:
        summary="results/evaluation/{plugin}/summary.md",
        csv="results/evaluation/{plugin}/summary.csv",
        per_problem="results/evaluation/{plugin}/per_problem.csv",
    log:
        "logs/evaluation/{plugin}/score.log",
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("eval_score", 1)
    resources:
        mem_mb=job_mem_mb("eval_score"),
        runtime=job_runtime("eval_score"),
    params:
        k=config["evaluation"]["k"],
    script:
        "../scripts/benchmark_score.py"


rule eval_report:
    input:
        expand(
            "results/evaluation/{benchmark}/{name}",
            benchmark=BENCHMARK_NAMES,
            name=["summary.md", "summary.csv", "per_problem.csv"],
        ),
    output:
        summary="results/report/summary.md",
        csv=report(
            "results/report/summary.csv",
            caption="../report/summary_csv.rst",
            category="Evaluation",
            subcategory="pass@1",
            labels={"result": "all benchmarks and splits (CSV download)"},
        ),
        per_problem="results/report/per_problem.csv",
        chart=report(
            "results/report/pass_at_1.png",
            caption="../report/pass_at_1.rst",
            category="Evaluation",
            subcategory="pass@1",
            labels={"result": "pass@1 chart"},
        ),
    log:
        "logs/evaluation/report.log",
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("eval_report", 1)
    resources:
        mem_mb=job_mem_mb("eval_report"),
        runtime=job_runtime("eval_report"),
    params:
        benchmarks=BENCHMARK_NAMES,
        k=config["evaluation"]["k"],
    script:
        "../scripts/eval_report.py"
