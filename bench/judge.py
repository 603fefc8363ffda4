"""Benchmark: how well an LLM judge (``filtering.judge``) tells good triplets from broken ones, measured.

    python bench/judge.py --triplets PATH [--cases 50] [--seed 0]
        (--config CONFIG --judge NAME [--second-judge NAME] | --fake) [--cache-dir DIR] [--json OUT]

1. Reads the kept (status "ok") triplets of ``--triplets`` (a triplets JSON Lines file as filtering
   writes it), picks up to ``--cases`` of them (seeded), and makes, for each and for both instruction
   styles, labelled cases (``bench/judge_cases.py``): ``correct`` (the triplet as it is: all PASS),
   ``post_unchanged`` (post-edit code = pre-edit code: edit_complete FAIL), ``other_program`` (another
   triplet's post-edit program: edit_complete and edit_focused FAIL), ``other_instruction`` (another
   triplet's instruction of the same style: edit_complete and edit_focused FAIL), ``unrelated_change``
   (the edit plus an integer literal changed on a line the edit leaves alone, or a function of another
   triplet appended, alternately: edit_focused FAIL) and ``already_done`` (both programs are the
   post-edit program: edit_needed FAIL). Every other verdict is expected to PASS.
2. Judges every case with the judge's own request and parser (``judge_request``, ``parse_verdicts``)
   through ``open_backend``, all cases in one ``generate()`` call; ``--cache-dir`` (default: the
   config's ``cache_dir``, relative to where the bench runs) makes a rerun against a paid model free;
   run from the workflow's folder, the ``correct`` cases reuse the judge stage's answers (the same
   requests). ``--fake`` serves two scripted judges, ``scripted-strict`` and ``scripted-lenient``
   (surface heuristics over the prompt alone, documented in ``judge_cases.scripted_verdicts``), from
   an in-process FakeServer.
3. Prints per judge and verdict, FAIL being the positive class, precision and recall with tp/fp/fn and
   the cases counted, once with UNCERTAIN counted as FAIL and once as PASS (and how many were
   UNCERTAIN); unparseable answers and failed calls are reported on their own and left out of these
   figures. Then per case kind the share of cases whose three verdicts all match (an UNCERTAIN or an
   unreadable answer never matches), and, with a second judge, per verdict the raw agreement and
   Cohen's kappa over the PASS/FAIL/UNCERTAIN values of the cases both judges answered (kappa is None
   where undefined: both judges gave one same value throughout). ``--json`` writes every figure and
   each case (kind, style, triplet, expected and what each judge said).

The expected labels are assumptions about real triplets, which can themselves be wrong. A flawed
triplet (an incomplete edit, an unasked change, an edit already done) makes its ``correct`` case
truly fail; a judge that sees it is counted a false positive, so precision and the ``correct`` share
are biased down, by about the share of flawed triplets, for a judge that is right. The other way, a
corruption can fail to corrupt: another triplet's instruction can happen to fit, a changed literal
can sit in code that never runs; a judge right to pass such a case counts as a false negative, so
recall is biased down too, less so (the corruptions rarely miss). The figures measure agreement with
these labels: lower bounds for a good judge. A good judge is expected to reach recall near 1 on
post_unchanged, other_program and already_done, and a high share on correct; the scripted judges are
weak on purpose (UNCERTAIN often, blind to a literal changed in a function the instruction names).
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import cohen_kappa_score

sys.path.insert(0, str(Path(__file__).parent))
from judge_cases import KINDS, SCRIPTED_JUDGES, STYLES, BenchError, Case, build_cases, scripted_answer  # noqa: E402

from editforge.backend import open_backend  # noqa: E402
from editforge.backend.fake_server import FakeServer  # noqa: E402
from editforge.config import ConfigError, read_yaml, validate  # noqa: E402
from editforge.filtering.checks import require_fields  # noqa: E402
from editforge.filtering.judge import DEFAULT_JUDGE, VALUES, VERDICTS, judge_request, parse_verdicts  # noqa: E402
from editforge.records import RecordError, read_jsonl, write_json  # noqa: E402

Answer = dict[str, str] | str  # verdict -> value, or "unparseable" / "error"


def judge_all(
    cases: Sequence[Case], name: str, spec: Mapping[str, Any], cache_dir: str | None, tokens: int
) -> list[Answer]:
    """What the judge ``name`` said of each case, in one ``generate()`` call."""
    requests = [judge_request(case.record(), case.style, tokens) for case in cases]
    with open_backend(name, spec, cache_dir) as backend:
        answers = [samples[0] for samples in backend.generate(requests, desc=f"judge {name}")]
    said: list[Answer] = []
    for completion in answers:
        verdicts = None if completion.error is not None else parse_verdicts(completion.text)
        if verdicts is None:
            said.append("error" if completion.error is not None else "unparseable")
        else:
            said.append({verdict: verdicts[verdict]["verdict"] for verdict in VERDICTS})
    return said


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def confusion(cases: Sequence[Mapping[str, Any]], judge: str, verdict: str, uncertain_as: str) -> dict[str, Any]:
    """tp/fp/fn/tn, precision and recall of one verdict, FAIL the positive class, over the answered cases."""
    outcomes: Counter[str] = Counter()
    for case in cases:
        got = case["got"][judge]
        if isinstance(got, dict):
            said_fail = (uncertain_as if got[verdict] == "UNCERTAIN" else got[verdict]) == "FAIL"
            is_fail = case["expected"][verdict] == "FAIL"
            outcomes[("t" if said_fail == is_fail else "f") + ("p" if said_fail else "n")] += 1
    tp, fp, fn, tn = (outcomes[key] for key in ("tp", "fp", "fn", "tn"))
    return {
        "cases": tp + fp + fn + tn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
    }


def judge_figures(cases: Sequence[Mapping[str, Any]], judge: str) -> dict[str, Any]:
    answers = [case["got"][judge] for case in cases]
    unparseable, errors = answers.count("unparseable"), answers.count("error")
    verdicts = {
        verdict: {
            "uncertain": sum(isinstance(got, dict) and got[verdict] == "UNCERTAIN" for got in answers),
            "uncertain_as_fail": confusion(cases, judge, verdict, "FAIL"),
            "uncertain_as_pass": confusion(cases, judge, verdict, "PASS"),
        }
        for verdict in VERDICTS
    }
    kinds = {}
    for kind in KINDS:
        of_kind = [case for case in cases if case["kind"] == kind]
        matching = sum(case["got"][judge] == case["expected"] for case in of_kind)
        kinds[kind] = {"cases": len(of_kind), "all_match": matching, "share": ratio(matching, len(of_kind))}
    return {
        "cases": len(cases),
        "unparseable": unparseable,
        "errors": errors,
        "unparseable_share": ratio(unparseable, len(cases)),
        "verdicts": verdicts,
        "kinds": kinds,
    }


def agreement(cases: Sequence[Mapping[str, Any]], first: str, second: str) -> dict[str, Any]:
    """Per verdict: raw agreement and Cohen's kappa of two judges over the cases both answered."""
    both = [
        (c["got"][first], c["got"][second])
        for c in cases
        if all(isinstance(c["got"][j], dict) for j in (first, second))
    ]
    figures = {}
    for verdict in VERDICTS:
        a, b = [pair[0][verdict] for pair in both], [pair[1][verdict] for pair in both]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            kappa = float(cohen_kappa_score(a, b, labels=list(VALUES))) if both else math.nan
        figures[verdict] = {
            "cases": len(both),
            "agreement": ratio(sum(x == y for x, y in zip(a, b)), len(both)),
            "kappa": None if math.isnan(kappa) else kappa,
        }
    return figures


def show(value: float | None) -> str:
    return "    -" if value is None else f"{value:5.2f}"


def print_figures(judge: str, figures: Mapping[str, Any]) -> None:
    n, bad = figures["cases"], figures["unparseable"]
    print(f"\njudge {judge}: {n} cases; unparseable {bad} ({bad / n:.1%}), failed calls {figures['errors']}")
    half = " prec.  recall   tp   fp   fn    n"
    print(f"  {'FAIL = positive':<15}|{'UNCERTAIN as FAIL':^35}|{'UNCERTAIN as PASS':^35}| uncertain")
    print(f"  {'verdict':<15}|{half} |{half} |")
    for verdict, row in figures["verdicts"].items():
        cells = "".join(
            f" {show(m['precision'])}  {show(m['recall'])} {m['tp']:4d} {m['fp']:4d} {m['fn']:4d} {m['cases']:4d} |"
            for m in (row["uncertain_as_fail"], row["uncertain_as_pass"])
        )
        print(f"  {verdict:<15}|{cells} {row['uncertain']:5d}")
    print("  all three verdicts as expected, by case kind:")
    for kind, row in figures["kinds"].items():
        print(f"    {kind:<20}{row['all_match']:4d} of {row['cases']:<4d} {show(row['share'])}")


def print_agreement(first: str, second: str, figures: Mapping[str, Any]) -> None:
    print(f"\nagreement of {first} and {second} (cases both answered):")
    for verdict, row in figures.items():
        print(f"  {verdict:<16} {row['cases']:4d} cases   raw {show(row['agreement'])}   kappa {show(row['kappa'])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--triplets", required=True, help="a triplets JSON Lines file (results/filtered/triplets.jsonl)"
    )
    parser.add_argument("--cases", type=int, default=50, help="triplets to make cases of (12 cases each)")
    parser.add_argument("--seed", type=int, default=0)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="a workflow config: its models: entries")
    source.add_argument("--fake", action="store_true", help="the two scripted judges; no model")
    parser.add_argument("--judge", help="the models: entry that judges")
    parser.add_argument("--second-judge", help="a second models: entry, for agreement")
    parser.add_argument("--cache-dir", help="the LLM cache (default: the config's cache_dir; none with --fake)")
    parser.add_argument("--json", help="write every figure and case here")
    args = parser.parse_args()
    try:
        return run(args)
    except (BenchError, ConfigError, RecordError, OSError, ValueError) as err:
        message = " ".join(line.strip() for line in str(err).splitlines()) or type(err).__name__
        sys.exit(f"bench/judge.py: {message}")


def check_arguments(args: argparse.Namespace) -> None:
    """The errors argparse cannot see, before anything is read."""
    if args.cases < 1:
        raise BenchError(f"--cases must be at least 1, got {args.cases}")
    if args.fake and (args.judge or args.second_judge):
        raise BenchError("--fake judges with scripted-strict and scripted-lenient: leave out --judge")
    if args.config and not args.judge:
        raise BenchError("--config needs --judge NAME (a models: entry of the config)")
    if args.second_judge and args.second_judge == args.judge:
        raise BenchError(f"--second-judge {args.second_judge!r} is the first judge too: name another entry")


def read_cases(args: argparse.Namespace) -> list[Case]:
    if not Path(args.triplets).is_file():
        raise BenchError(f"--triplets {args.triplets}: no such file")
    triplets = list(read_jsonl(args.triplets))
    fields = ("id", "pre_code", "post_code", *(f"instruction_{style}" for style in STYLES))
    for triplet in triplets:
        if triplet.get("status") == "ok":
            require_fields(triplet, fields, args.triplets)
    try:
        return build_cases(triplets, args.cases, args.seed)
    except BenchError as err:
        raise BenchError(f"{args.triplets}: {err}") from None


@contextmanager
def judges_of(args: argparse.Namespace) -> Iterator[tuple[dict[str, Mapping[str, Any]], str | None, int]]:
    """The judges' models entries by name, the cache folder and the answer's token limit; for ``--fake``
    while the scripted judges' server runs."""
    if args.fake:
        with FakeServer(responder=scripted_answer, listed_models=SCRIPTED_JUDGES) as server:
            spec = {"backend": "openai", "base_url": server.base_url, "max_concurrency": 16, "retry_base_s": 0.05}
            yield (
                {name: spec | {"model": name} for name in SCRIPTED_JUDGES},
                args.cache_dir,
                DEFAULT_JUDGE["max_tokens"],
            )
        return
    config = validate(read_yaml(args.config) or {}, check_env=False)
    names = [args.judge] + ([args.second_judge] if args.second_judge else [])
    for name in names:
        if name not in config["models"]:
            raise BenchError(f"{args.config}: no models entry {name!r} (known: {', '.join(config['models'])})")
    tokens = config["filtering"].get("judge", {}).get("max_tokens", DEFAULT_JUDGE["max_tokens"])
    yield {name: config["models"][name] for name in names}, args.cache_dir or config["cache_dir"], tokens


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    cases = read_cases(args)
    with judges_of(args) as (specs, cache_dir, tokens):
        judges = list(specs)
        print(
            f"{len(cases)} cases from {len({c.triplet for c in cases})} triplets of {args.triplets} "
            f"(seed {args.seed}); judges: {', '.join(judges)}"
        )
        said = {name: judge_all(cases, name, spec, cache_dir, tokens) for name, spec in specs.items()}
    records = [
        {
            "kind": c.kind,
            "style": c.style,
            "triplet": c.triplet,
            "other": c.other,
            "variant": c.variant,
            "expected": c.expected,
            "got": {name: said[name][i] for name in judges},
        }
        for i, c in enumerate(cases)
    ]
    figures = {name: judge_figures(records, name) for name in judges}
    for name in judges:
        print_figures(name, figures[name])
    agreed = agreement(records, *judges) if len(judges) == 2 else None
    if agreed is not None:
        print_agreement(*judges, agreed)
    if args.json:
        everything = {"triplets": args.triplets, "seed": args.seed, "judges": judges, "figures": figures}
        write_json(args.json, everything | {"agreement": agreed, "cases": records})
    return 0


if __name__ == "__main__":
    sys.exit(main())
