"""Every prompt the workflow sends, as files, and the curated one-shot examples.

Each prompt is a file ``<name>_<PROMPT_VERSION>.txt`` in this folder and an input of the rules
that send it, so editing one reruns exactly those rules:

- ``system``, ``round1``, ``round2``: the two-round dialogue of synthesis
- ``commit_system``, ``commit``: commit rewriting
- ``fewshot.jsonl``: the one-shot examples of round 1
- ``generated_tests_system``, ``generated_tests``: the generated-tests check of filtering
- ``judge_system``, ``judge``: the LLM judge of filtering (``editforge.filtering.judge``)
- ``loading.py``: reads them (``template``, ``load_fewshot``, ``synthesis_files``)
"""

from editforge.templates.loading import (
    PROMPT_VERSION,
    FewShot,
    TemplateError,
    load_fewshot,
    synthesis_files,
    template,
    template_path,
)

__all__ = ["PROMPT_VERSION", "FewShot", "TemplateError", "load_fewshot", "synthesis_files", "template", "template_path"]
