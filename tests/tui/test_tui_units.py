"""Unit tests of the TUI's pure parts: column fitting, formats, themes, clock, actions, docs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.style import Style
from textual.color import Color

from console.tui import actions
from console.tui import format as fmt
from console.tui.clock import clock_from_env, parse_now
from console.tui.goto import match_model, no_such_model
from console.tui.themes import ThemeFileError, load_themes, parse_theme, theme_dirs
from console.tui.widgets.columns import CroppedLines
from console.tui.widgets.vtable import Column, fit_columns

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


# -- columns ----------------------------------------------------------------------------------

COLUMNS = [
    Column("name", "NAME", 20, min_width=8, priority=100, flex=True, max_width=30),
    Column("a", "A", 10, priority=90),
    Column("b", "B", 10, priority=40),  # optional
    Column("c", "C", 10, min_width=5, priority=60),
]


@pytest.mark.parametrize(
    ("width", "keys"),
    [
        (200, ["name", "a", "b", "c"]),
        (53, ["name", "a", "b", "c"]),
        (52, ["name", "a", "c"]),  # the optional column goes before anything shrinks
        (30, ["name", "a", "c"]),
        (20, ["name", "a"]),
        (5, ["name"]),
    ],
)
def test_fit_columns_drops_by_priority_and_fits(width, keys):
    fitted = fit_columns(COLUMNS, width)
    assert [c.key for c, _ in fitted] == keys
    used = sum(w for _, w in fitted) + len(fitted) - 1
    assert used <= max(width, fitted[0][1])


def test_flex_column_grows_only_to_its_maximum():
    fitted = dict((c.key, w) for c, w in fit_columns(COLUMNS, 200))
    assert fitted["name"] == 30
    assert fitted["a"] == 10


def _lines_at(renderable: object, width: int) -> list[str]:
    from rich.console import Console

    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text().splitlines()


def test_long_panel_lines_are_cut_with_an_ellipsis_never_wrapped():
    red = Style(color="red")
    lines = CroppedLines(
        [
            [("2026-11-23 ", None), ("alice ", red), ("promote v1.2.0 to production", None)],
            [("short", None)],
            [("名前が長い ", None), ("x", None)],
        ]
    )
    assert _lines_at(lines, 80) == [
        "2026-11-23 alice promote v1.2.0 to production",
        "short",
        "名前が長い x",
    ]
    assert _lines_at(lines, 20) == ["2026-11-23 alice pr…", "short", "名前が長い x"]
    assert _lines_at(lines, 11) == ["2026-11-23…", "short", "名前が長い…"]  # cut by cells
    assert _lines_at(lines, 1) == ["…", "…", "…"]


# -- formats ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(seconds=5), "5s"),
        (timedelta(minutes=12), "12m"),
        (timedelta(hours=5), "5h"),
        (timedelta(days=3), "3d"),
        (timedelta(days=20), "2w"),
        (timedelta(days=800), "2y"),
    ],
)
def test_age(delta, expected):
    assert fmt.age(NOW - delta, NOW) == expected


@pytest.mark.parametrize(
    ("delta", "direction", "better", "glyph"),
    [
        (0.01, "higher", True, fmt.BETTER),
        (-0.01, "higher", False, fmt.WORSE),
        (-0.01, "lower", True, fmt.BETTER),
        (0.0001, "higher", None, fmt.EQUAL),  # shows as 0.000: not a change
    ],
)
def test_better_or_worse_never_by_colour_alone(delta, direction, better, glyph):
    assert fmt.better(delta, direction) is better
    assert fmt.verdict(better, delta) == glyph


def test_signed_numbers_use_real_signs():
    assert fmt.signed(0.0123) == "+0.012"
    assert fmt.signed(-0.0123) == "\u22120.012"
    assert fmt.signed(-0.0001) == "\u00b10.000"
    assert fmt.signed_size(-1_500_000) == "\u22121.5 MB"


def test_spark_scales_to_its_own_range():
    assert fmt.spark([1, 2, 3, 4, 5, 6, 7, 8], 8) == fmt.SPARK
    assert fmt.spark([5, 5, 5], 10) == fmt.SPARK[3] * 3
    assert fmt.spark([], 4) == ""
    assert len(fmt.spark(list(range(100)), 10)) == 10


def test_value_formats():
    assert fmt.percent(0.0048) == "0.48%"
    assert fmt.latency(96.26) == "96ms"
    assert fmt.size(48_000_000) == "48.0 MB"
    assert fmt.duration(45) == "45s" and fmt.duration(900) == "15m"


# -- themes -----------------------------------------------------------------------------------


def test_bundled_themes_load_without_problems():
    themes, problems = load_themes([ROOT / "themes"])
    assert problems == []
    assert {"dark", "light", "high-contrast", "colorblind"} <= set(themes)
    for spec in themes.values():
        assert {"better", "worse", "muted"} <= set(spec.variables), spec.name
        theme = spec.to_textual()
        assert theme.name == spec.name


def test_colorblind_theme_does_not_pair_red_with_green():
    themes, _ = load_themes([ROOT / "themes"])
    spec = themes["colorblind"]
    better_hue = Color.parse(spec.variables["better"]).hsl.h * 360
    worse_hue = Color.parse(spec.variables["worse"]).hsl.h * 360
    assert 180 <= better_hue <= 250  # blue
    assert 20 <= worse_hue <= 50  # orange


def test_theme_dirs_include_the_source_themes_folder():
    assert ROOT / "themes" in theme_dirs()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('name = "x"\ncolour = 1\n[colors]\nprimary = "#fff"', "colour"),
        ('name = "x"\n[colors]\nsecondary = "#fff"', "colors.primary"),
        ('name = "x"\n[colors]\nprimary = "#fff"\nprimay = "#000"', "colors.primay"),
        ('name = "x"\n[colors]\nprimary = "not-a-colour"', "colors.primary"),
        ('name = "x"\ndark = "yes"\n[colors]\nprimary = "#fff"', "dark"),
        (
            'name = "x"\n[colors]\nprimary = "#fff"\n[variables]\nbetter = "nope"',
            "variables.better",
        ),
        ("name = [", "not valid TOML"),
    ],
)
def test_theme_errors_name_the_key(text, key):
    with pytest.raises(ThemeFileError, match=re.escape(key)):
        parse_theme(text, Path("/tmp/x.toml"))


def test_a_broken_theme_file_is_reported_and_the_rest_load(tmp_path):
    (tmp_path / "good.toml").write_text('[colors]\nprimary = "#123456"\n')
    (tmp_path / "bad.toml").write_text('[colors]\nprimary = "nope"\n')
    themes, problems = load_themes([tmp_path])
    assert list(themes) == ["good"]
    assert len(problems) == 1 and "bad.toml" in problems[0]


# -- clock ------------------------------------------------------------------------------------


def test_clock_frozen_by_env():
    clock = clock_from_env({"CD4ML_NOW": "2025-03-14T09:30:00Z"})
    assert clock() == NOW
    assert parse_now("2025-03-14T09:30:00") == NOW
    with pytest.raises(ValueError, match="CD4ML_NOW"):
        parse_now("yesterday")
    assert clock_from_env({})().tzinfo is not None


# -- actions ----------------------------------------------------------------------------------


def test_every_release_action_has_its_own_key_and_a_handler():
    import inspect

    table = actions.RELEASE_ACTIONS
    assert len({a.key for a in table.values()}) == len(table)
    assert all(inspect.iscoroutinefunction(a.run) for a in table.values())


def test_only_approve_promote_rollback_change_anything():
    assert {a for a in actions.RELEASE_ACTIONS if actions.is_mutating(a)} == {
        "approve",
        "promote",
        "rollback",
    }


# -- docs -------------------------------------------------------------------------------------


def test_keys_doc_lists_every_binding():
    from console.tui.app import ConsoleApp
    from console.tui.screens.approve import ApproveDialog
    from console.tui.screens.audit import AuditScreen, AuditTable
    from console.tui.screens.compare import CompareScreen
    from console.tui.screens.dialog import ActionDialog
    from console.tui.screens.model import ModelScreen, VersionsTable
    from console.tui.screens.overview import ModelsTable, OverviewScreen
    from console.tui.screens.pick import PickScreen
    from console.tui.widgets.vtable import VirtualTable

    doc = (ROOT / "docs" / "keys.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([^`]+)`", doc))
    names = {
        "question_mark": "?",
        "colon": ":",
        "slash": "/",
        "left_square_bracket": "[",
        "right_square_bracket": "]",
        "greater_than_sign": ">",
    }
    missing = []
    classes = (ConsoleApp, OverviewScreen, ModelsTable, ModelScreen, VersionsTable, VirtualTable,
               ActionDialog, ApproveDialog, CompareScreen, AuditScreen, AuditTable, PickScreen)  # fmt: skip
    for cls in classes:
        for binding in cls.BINDINGS:
            for key in binding.key.split(","):
                shown = names.get(key, key)
                if shown not in documented:
                    missing.append(f"{cls.__name__}: {shown}")
    assert missing == []


MODEL_NAMES = ["fraud-detector", "churn-predictor", "price-recommender", "price-ranker"]


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("churn-predictor", "churn-predictor"),
        ("Churn-Predictor", "churn-predictor"),
        ("FRAUD", "fraud-detector"),
        ("price", None),  # two models start so
        ("price-rec", "price-recommender"),
        ("detector", None),  # not a prefix
    ],
)
def test_a_model_name_may_differ_in_case_or_be_a_unique_prefix(typed, meant):
    assert match_model(typed, MODEL_NAMES) == meant


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("fraud-detecter", "No model named 'fraud-detecter' — did you mean fraud-detector?"),
        ("frod", "No model named 'frod' — did you mean fraud-detector?"),
        ("chrun", "No model named 'chrun' — did you mean churn-predictor?"),
        ("xyz", "No model named 'xyz'"),
    ],
)
def test_an_unknown_model_name_is_answered_with_the_nearest(typed, said):
    assert no_such_model(typed, iter(MODEL_NAMES)) == said
