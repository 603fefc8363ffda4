"""The experiments: block expanded: cells, the data stages variants share, blends, and every mistake
named by its key before anything runs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from editforge import config as efconfig
from editforge.experiments.grid import (
    LEVELS,
    Cell,
    deep_merge,
    experiment,
    level_key,
)
from helpers.experiments import DEMO, VARIANTS
from helpers.workflow import every_benchmark

GRID: dict[str, Any] = {
    "name": "g",
    "baseline": "paper",
    "students": ["smollm2-edit"],
    "seeds": [1, 2],
    "size": {"n": 10},
    "variants": VARIANTS,
}


def raw_config(**block: Any) -> dict[str, Any]:
    """The demo config with an experiments: block: GRID with ``block``'s keys replaced."""
    raw = copy.deepcopy(DEMO)
    raw["experiments"] = copy.deepcopy(GRID) | copy.deepcopy(block)
    return raw


def only(**variants: Any) -> dict[str, Any]:
    """A raw config whose experiment has the baseline and ``variants``."""
    return raw_config(variants={"paper": {}, **variants})


def error(raw: dict[str, Any]) -> str:
    with pytest.raises(efconfig.ConfigError) as info:
        efconfig.validate(raw)
    return str(info.value)


def one_line_error(raw: dict[str, Any]) -> str:
    message = error(raw)
    assert "\n" not in message, message
    return message


@pytest.fixture(scope="module")
def grid() -> tuple[dict[str, Any], Any]:
    cfg = efconfig.validate(raw_config())
    return cfg, experiment(cfg)


# --- cells -------------------------------------------------------------------------------------


def test_a_config_without_the_block_has_no_experiment() -> None:
    assert experiment(efconfig.validate(copy.deepcopy(DEMO))) is None


def test_cells_are_the_product_in_student_variant_seed_order(grid: tuple[dict[str, Any], Any]) -> None:
    _, exp = grid
    assert exp.name == "g" and exp.baseline == "paper" and exp.root == "results/experiments/g"
    assert exp.seeds == [1, 2] and exp.students == ["smollm2-edit"] and exp.benchmarks == ["canitedit"]
    assert set(exp.variants) == set(GRID["variants"])
    expected = [f"{v}~smollm2-edit~s{s}" for v in exp.variants for s in (1, 2)]
    assert [c.id for c in exp.cells] == expected
    assert len(exp.cells) == 6 * 2
    # the same config gives the same ids
    again = experiment(efconfig.validate(raw_config()))
    assert [c.id for c in again.cells] == expected


def test_exclusions_remove_cells_and_students_come_first() -> None:
    raw = raw_config(
        students=["zz-edit", "smollm2-edit"],  # the list's order, not the names'
        seeds=[7, 3],
        variants={"paper": {}, "lazy_only": GRID["variants"]["lazy_only"]},
        exclude=[{"variant": "lazy_only", "student": "zz-edit", "seed": 3}, {"variant": "lazy_only", "seed": 7}],
    )
    raw["training"]["students"]["zz-edit"] = copy.deepcopy(raw["training"]["students"]["smollm2-edit"])
    exp = experiment(efconfig.validate(raw))
    variants = list(exp.variants)
    assert sorted(variants) == ["lazy_only", "paper"]
    full = [Cell(v, student, seed) for student in ("zz-edit", "smollm2-edit") for v in variants for seed in (7, 3)]
    removed = {Cell("lazy_only", "zz-edit", 3), Cell("lazy_only", "zz-edit", 7), Cell("lazy_only", "smollm2-edit", 7)}
    assert exp.cells == [c for c in full if c not in removed]
    assert len(exp.cells) == 8 - 3
    assert Cell("lazy_only", "smollm2-edit", 3).id == "lazy_only~smollm2-edit~s3"


def test_seeds_default_to_the_runs_seed_and_benchmarks_to_all_configured() -> None:
    raw = raw_config(variants={"paper": {}})
    del raw["experiments"]["seeds"]
    exp = experiment(efconfig.validate(raw))
    assert exp.seeds == [DEMO["seed"]]
    assert [c.id for c in exp.cells] == [f"paper~smollm2-edit~s{DEMO['seed']}"]
    assert exp.resamples == 10_000
    assert exp.power == {"item_variance": 0.14, "seed_variance": 0.0027, "alpha": 0.05, "power": 0.8}


def test_benchmarks_follow_the_reports_order() -> None:
    raw = every_benchmark(raw_config(variants={"paper": {}}))
    cfg = efconfig.validate(raw)
    assert efconfig.benchmark_names(cfg) == ["canitedit", "humanevalfix", "aider_exercism"]
    assert experiment(cfg).benchmarks == efconfig.benchmark_names(cfg)


def test_the_experiments_benchmarks_are_a_subset_of_the_configured() -> None:
    raw = every_benchmark(raw_config(variants={"paper": {}}, benchmarks=["humanevalfix", "canitedit"]))
    assert sorted(experiment(efconfig.validate(raw)).benchmarks) == ["canitedit", "humanevalfix"]


# --- the stages variants share -----------------------------------------------------------------


def test_owners_follow_the_levels_each_override_touches(grid: tuple[dict[str, Any], Any]) -> None:
    _, exp = grid
    owners = {name: v.owners for name, v in exp.variants.items() if v.kind == "overrides"}
    assert owners == {
        "paper": {"generation": "", "filtering": "", "judge": "", "dataset": ""},
        "lazy_only": {"generation": "", "filtering": "", "judge": "", "dataset": "lazy_only"},
        "no_hunks": {"generation": "", "filtering": "no_hunks", "judge": "no_hunks", "dataset": "no_hunks"},
        "window": {"generation": "window", "filtering": "window", "judge": "window", "dataset": "window"},
    }
    assert exp.owners("generation") == ["window"]
    assert sorted(exp.owners("filtering")) == ["no_hunks", "window"]
    assert sorted(exp.owners("dataset")) == ["lazy_only", "no_hunks", "window"]
    assert exp.level_root("lazy_only", "filtering") == "results"
    assert exp.level_root("lazy_only", "dataset") == "results/experiments/g/stages/lazy_only"
    assert exp.data_dir("mix") == "results/experiments/g/data/mix"
    assert exp.cell_dir("paper~smollm2-edit~s1") == "results/experiments/g/cells/paper~smollm2-edit~s1"
    assert exp.variants["lazy_only"].config["dataset"]["styles"] == ["lazy"]
    assert exp.variants["paper"].config["dataset"]["styles"] == ["lazy", "descriptive"]
    assert exp.variants["window"].config["seeds"]["snippet_mode"] == "window"


def test_variants_with_the_same_settings_share_their_stages() -> None:
    lazy = {"overrides": {"dataset": {"styles": ["lazy"]}}}
    hunks = {"overrides": {"filtering": {"max_hunks": 99}}}
    exp = experiment(
        efconfig.validate(
            only(
                lazy_a=lazy,
                lazy_b=copy.deepcopy(lazy),
                hunks_a=hunks,
                hunks_b=copy.deepcopy(hunks),
                # the run's own values, written out: nothing of its own
                same=dict(overrides={"dataset": {"styles": ["lazy", "descriptive"]}, "filtering": {"max_hunks": 7}}),
                small={"size": {"n": 5, "mode": "at_most"}},
            )
        )
    )
    v = exp.variants
    assert v["lazy_a"].owners == {"generation": "", "filtering": "", "judge": "", "dataset": "lazy_a"}
    assert v["lazy_b"].owners == {"generation": "", "filtering": "", "judge": "", "dataset": "lazy_a"}
    assert v["hunks_a"].owners == {"generation": "", "filtering": "hunks_a", "judge": "hunks_a", "dataset": "hunks_a"}
    assert v["hunks_b"].owners == {"generation": "", "filtering": "hunks_a", "judge": "hunks_a", "dataset": "hunks_a"}
    assert v["same"].owners == dict.fromkeys(LEVELS, "")
    assert v["small"].kind == "overrides" and v["small"].owners == dict.fromkeys(LEVELS, "")
    assert v["small"].size == {"n": 5, "unit": "rows", "mode": "at_most"}  # merged into the block's size
    assert v["paper"].size == {"n": 10, "unit": "rows", "mode": "exact"}
    assert sorted(exp.owners("dataset")) == ["hunks_a", "lazy_a"]
    assert exp.owners("generation") == []


def test_the_judge_is_a_level_of_its_own_and_static_checks_are_filterings() -> None:
    """A judge variant reuses the run's filtering and dedup and reads its own judged triplets; switching the
    static checks off rebuilds filtering; a variant turning the run's judge off reads dedup's file."""
    no_static = dict.fromkeys(("undefined_names", "missing_imports", "leftover_markup", "truncated_code"), False)
    raw = only(
        judged={"overrides": {"filtering": {"judge": {"model": "smollm2"}}}},
        lenient={"overrides": {"filtering": {"judge": {"model": "smollm2", "uncertain": "pass"}}}},
        no_static={"overrides": {"filtering": {"static_checks": no_static}}},
    )
    exp = experiment(efconfig.validate(raw))
    v = exp.variants
    assert v["judged"].owners == {"generation": "", "filtering": "", "judge": "judged", "dataset": "judged"}
    assert v["lenient"].owners == {"generation": "", "filtering": "", "judge": "lenient", "dataset": "lenient"}
    assert v["no_static"].owners == {"generation": "", "filtering": "no_static", "judge": "no_static",
                                     "dataset": "no_static"}
    assert sorted(exp.owners("judge")) == ["judged", "lenient"]  # no_static has no judge to run
    assert exp.triplets("judged") == "results/experiments/g/stages/judged/filtered/judged.jsonl"
    assert exp.triplets("no_static") == "results/experiments/g/stages/no_static/filtered/triplets.jsonl"
    assert exp.triplets("paper") == "results/filtered/triplets.jsonl"
    # The run judges: a variant with the same judge shares it, one switching it off reads dedup's triplets.
    raw = only(same={"overrides": {"filtering": {"judge": {"uncertain": "fail"}}}},
               unjudged={"overrides": {"filtering": {"judge": {"model": None}}}})
    raw["filtering"] = {"judge": {"model": "smollm2"}}
    exp = experiment(efconfig.validate(raw))
    assert exp.variants["same"].owners == dict.fromkeys(LEVELS, "")
    assert exp.triplets("same") == "results/filtered/judged.jsonl"
    assert exp.variants["unjudged"].owners["filtering"] == "" and exp.owners("judge") == []
    assert exp.triplets("unjudged") == "results/filtered/triplets.jsonl"


def test_a_judge_model_that_is_no_models_entry_is_named() -> None:
    raw = only(judged={"overrides": {"filtering": {"judge": {"model": "gpt-9"}}}})
    message = one_line_error(raw)
    assert "experiments.variants.judged.overrides" in message and "filtering.judge.model: 'gpt-9'" in message


def test_a_variant_adding_a_synthesis_model_lists_it() -> None:
    raw = only(two={"overrides": {"synthesis": {"models": ["smollm2", "smollm2b"]}}})
    raw["models"]["smollm2b"] = copy.deepcopy(raw["models"]["smollm2"])
    exp = experiment(efconfig.validate(raw))
    # the model list is not a generation setting (adding a model runs its branch only); filtering reads it
    assert exp.variants["two"].owners == {"generation": "", "filtering": "two", "judge": "two", "dataset": "two"}
    assert exp.synthesis_models() == ["smollm2", "smollm2b"]


def test_level_keys_depend_on_their_level_and_the_levels_before() -> None:
    cfg = efconfig.validate(copy.deepcopy(DEMO))
    changes = {
        "styles": {"dataset": {"styles": ["lazy"]}},
        "hunks": {"filtering": {"max_hunks": 3}},
        "models": {"synthesis": {"models": ["smollm2", "smollm2"]}},
        "temperature": {"synthesis": {"sampling": {"temperature": 0.1}}},
        "window": {"seeds": {"snippet_mode": "window"}},
        "judge": {"filtering": {"judge": {"model": "smollm2"}}},
        "judge_setting_while_off": {"filtering": {"judge": {"uncertain": "pass"}}},
        "static": {"filtering": {"static_checks": {"truncated_code": False}}},
        "budget": {"synthesis": {"max_error_share": 0.9}},
        "workers": {"evaluation": {"workers": 9}},
    }
    changed = {}
    for name, change in changes.items():
        other = deep_merge(cfg, change)
        changed[name] = [level for level in LEVELS if level_key(other, level) != level_key(cfg, level)]
    assert changed == {
        "styles": ["dataset"],
        "hunks": ["filtering", "judge", "dataset"],
        "models": ["filtering", "judge", "dataset"],
        "temperature": ["generation", "filtering", "judge", "dataset"],
        "window": ["generation", "filtering", "judge", "dataset"],
        "judge": ["judge", "dataset"],
        "judge_setting_while_off": [],
        "static": ["filtering", "judge", "dataset"],
        "budget": [],
        "workers": [],
    }


def test_blend_shares_are_normalised(grid: tuple[dict[str, Any], Any]) -> None:
    _, exp = grid
    mix = exp.variants["mix"]
    assert mix.kind == "blend" and mix.blend == {"paper": 0.75, "ext": 0.25} and mix.config is None
    exp = experiment(efconfig.validate(only(ext=GRID["variants"]["ext"], mix={"blend": {"paper": 3, "ext": 1}})))
    assert exp.variants["mix"].blend == pytest.approx({"paper": 0.75, "ext": 0.25})
    ext = exp.variants["ext"]
    assert ext.kind == "external" and ext.owners == {} and ext.config is None
    assert ext.external["source"] == "some/hub-id" and ext.external["format"] == "flat"


# --- mistakes, named by their key ----------------------------------------------------------------


def test_unknown_baseline_is_named() -> None:
    message = one_line_error(raw_config(baseline="nope"))
    assert message.startswith("experiments.baseline: 'nope'") and "experiments.variants" in message


def test_unknown_student_is_named() -> None:
    message = one_line_error(raw_config(students=["smollm2-edit", "ghost"]))
    assert message.startswith("experiments.students: 'ghost'") and "training.students" in message


def test_benchmark_not_configured_is_named() -> None:
    message = one_line_error(raw_config(benchmarks=["humanevalfix"]))
    assert message.startswith("experiments.benchmarks: 'humanevalfix'") and "evaluation.benchmarks" in message


def test_decontamination_cannot_be_overridden() -> None:
    raw = only(dirty={"overrides": {"filtering": {"decontamination": {"max_contaminated_share": 1.0}}}})
    message = one_line_error(raw)
    assert message.startswith("experiments.variants.dirty.overrides.filtering.decontamination:")
    assert "cannot be switched off" in message


@pytest.mark.parametrize(
    ("section", "key", "value"), [("seeds", "num_shards", 4), ("synthesis", "max_error_share", 0.5)]
)
def test_run_wide_settings_cannot_be_overridden(section: str, key: str, value: Any) -> None:
    message = one_line_error(only(v={"overrides": {section: {key: value}}}))
    assert message.startswith(f"experiments.variants.v.overrides.{section}.{key}: not a variant setting")


def test_an_invalid_override_value_is_named_under_the_variant() -> None:
    message = one_line_error(only(v={"overrides": {"filtering": {"max_hunks": 0}}}))
    assert message.startswith("experiments.variants.v.overrides: ")
    assert "filtering.max_hunks" in message


def test_an_override_naming_an_unknown_model_is_named_under_the_variant() -> None:
    message = one_line_error(only(v={"overrides": {"dataset": {"mix": {"gpt-9": 1.0}}}}))
    assert message.startswith("experiments.variants.v.overrides: ") and "gpt-9" in message


def test_an_unknown_override_section_is_a_schema_error() -> None:
    message = error(only(v={"overrides": {"training": {"max_steps": 1}}}))
    assert "experiments.variants.v.overrides: unknown key 'training'" in message


def test_a_blend_of_an_unknown_variant_is_named() -> None:
    message = one_line_error(only(mix={"blend": {"paper": 0.5, "ghost": 0.5}}))
    assert message.startswith("experiments.variants.mix.blend: 'ghost' is not another variant")


def test_a_blend_of_itself_is_named() -> None:
    message = one_line_error(only(mix={"blend": {"paper": 0.5, "mix": 0.5}}))
    assert message.startswith("experiments.variants.mix.blend: 'mix' is not another variant")


def test_a_blend_of_a_blend_is_named() -> None:
    lazy = {"overrides": {"dataset": {"styles": ["lazy"]}}}
    message = one_line_error(
        only(lazy=lazy, mix={"blend": {"paper": 0.5, "lazy": 0.5}}, remix={"blend": {"mix": 0.5, "lazy": 0.5}})
    )
    assert message.startswith("experiments.variants.remix.blend: 'mix' is a blend itself")


def test_an_exclusion_of_a_students_baseline_is_named() -> None:
    message = one_line_error(raw_config(exclude=[{"variant": "paper", "student": "smollm2-edit"}]))
    assert message.startswith("experiments.exclude: leaves student 'smollm2-edit' without a baseline cell")
    # one seed of the baseline left is enough
    exp = experiment(efconfig.validate(raw_config(exclude=[{"variant": "paper", "seed": 1}])))
    assert [c.id for c in exp.cells if c.variant == "paper"] == ["paper~smollm2-edit~s2"]


def test_a_variant_with_overrides_and_an_external_set_is_a_schema_error() -> None:
    both = {"overrides": {"dataset": {"styles": ["lazy"]}}, "external": {"source": "some/hub-id"}}
    message = error(only(both=both))
    assert message.startswith("invalid config:") and "experiments.variants.both" in message


def test_a_variant_name_with_the_cell_separator_is_a_schema_error() -> None:
    message = error(only(**{"a~b": {}}))
    assert message.startswith("invalid config:") and "experiments.variants" in message and "'a~b'" in message


# --- helpers -------------------------------------------------------------------------------------


def test_cell_student() -> None:  # config.cell_student, the one parse of a cell id
    assert efconfig.cell_student("paper~smollm2-edit~s1") == "smollm2-edit"
    assert efconfig.cell_student(Cell("lazy_only", "oce-qwen2.5-coder-7b", 3).id) == "oce-qwen2.5-coder-7b"
    assert efconfig.cell_student("smollm2-edit") is None
    assert efconfig.cell_student("a~b") is None
    assert efconfig.cell_student("a~b~c~d") is None


def test_deep_merge_merges_mappings_replaces_the_rest_and_mutates_nothing() -> None:
    base = {"a": {"b": 1, "c": {"d": [1, 2], "e": 2}}, "f": [1], "g": {"h": 1}}
    overrides = {"a": {"c": {"d": [3]}, "x": 9}, "f": [2, 3], "g": 5, "new": {"k": [1]}}
    before_base, before_overrides = copy.deepcopy(base), copy.deepcopy(overrides)
    merged = deep_merge(base, overrides)
    assert merged == {
        "a": {"b": 1, "c": {"d": [3], "e": 2}, "x": 9},
        "f": [2, 3],
        "g": 5,
        "new": {"k": [1]},
    }
    assert base == before_base and overrides == before_overrides
    merged["a"]["c"]["e"] = 99
    merged["new"]["k"].append(2)
    assert base == before_base and overrides == before_overrides  # no shared objects either


def test_a_cells_target_spec_is_its_model_folder_with_the_students_base_settings(
    grid: tuple[dict[str, Any], Any],
) -> None:
    cfg, _ = grid
    cell = "lazy_only~smollm2-edit~s2"
    spec = efconfig.target_spec(cfg, cell)
    base = cfg["models"]["smollm2"]
    assert spec == {**base, "model": f"results/experiments/g/cells/{cell}/model", "prompt_format": "editforge"}
    assert efconfig.target_spec(cfg, "smollm2-edit")["model"] == "results/training/smollm2-edit/model"
    assert efconfig.target_spec(cfg, cell, "elsewhere/model")["model"] == "elsewhere/model"


def test_variants_keep_the_order_they_are_written_in() -> None:
    variants = {"zeta": {}, "alpha": {"size": {"n": 3}}, "mid": {"overrides": {"dataset": {"styles": ["lazy"]}}}}
    exp = experiment(efconfig.validate(raw_config(baseline="zeta", variants=variants)))
    assert list(exp.variants) == ["zeta", "alpha", "mid"]
    assert [cell.variant for cell in exp.cells][::2] == ["zeta", "alpha", "mid"]


def test_an_exclusion_naming_nothing_of_the_experiment_is_an_error() -> None:
    message = one_line_error(raw_config(exclude=[{"variant": "paper"}, {"student": "nobody"}]))
    assert message == "experiments.exclude.1.student: 'nobody' is not one of the experiment's students"
