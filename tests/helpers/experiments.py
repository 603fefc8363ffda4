"""What the experiments tests share: the demo config, and variants of every kind (the run's data, a
mix, a filter and a seeds override, an external set, a blend)."""

from __future__ import annotations

from typing import Any

import yaml

from helpers import REPO

DEMO: dict[str, Any] = yaml.safe_load((REPO / "config/config.yaml").read_text())
VARIANTS: dict[str, Any] = {
    "paper": {},
    "lazy_only": {"overrides": {"dataset": {"styles": ["lazy"]}}},
    "no_hunks": {"overrides": {"filtering": {"max_hunks": 99}}},
    "window": {"overrides": {"seeds": {"snippet_mode": "window"}}},
    "ext": {"external": {"source": "some/hub-id"}},
    "mix": {"blend": {"paper": 0.75, "ext": 0.25}},
}
