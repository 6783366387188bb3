"""Every rule: valid metadata, SQL that compiles, and its own match / no-match events."""

from __future__ import annotations

import pytest

from kforensics.detect.rule import builtin_dir, load_rules, parse_rule
from kforensics.detect.selftest import check_rule

RULES = load_rules(statuses=None)


def test_there_are_rules_and_ids_are_file_names():
    assert len(RULES) == len(list(builtin_dir().glob("*.yaml")))
    assert all(r.id == r.path.stem for r in RULES)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rule(rule):
    assert parse_rule(rule.path) == rule
    assert check_rule(rule) == []
