"""Every registered exercise accepts its worked solution and rejects each planted mistake."""

from pathlib import Path

import pytest

import dlpt
from dlpt import check
from dlpt.check import ExerciseFailed

# Every dlpt/<chapter>_exercises.py module, found on disk so that a new chapter is tested too.
CHAPTERS = sorted(p.name.removesuffix("_exercises.py") for p in Path(dlpt.__file__).parent.glob("*_exercises.py"))
EXERCISES = {name: ex for chapter in CHAPTERS for name, ex in check.registry(chapter).items()
             if not name.startswith("testing.")}
MISTAKES = [(name, i) for name, ex in EXERCISES.items() for i in range(len(ex.mistakes))]


def test_every_chapter_exercise_has_at_least_two_planted_mistakes():
    assert {"practice", "convnets", "sequences"} <= set(CHAPTERS)
    assert len(EXERCISES) >= 3
    for name, ex in EXERCISES.items():
        assert len(ex.mistakes) >= 2, name


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_solution_passes(name, capsys):
    check.exercise(name, EXERCISES[name].solution)
    assert capsys.readouterr().out.startswith(f"✓ {name}: ")


@pytest.mark.parametrize(("name", "index"), MISTAKES)
def test_planted_mistake_is_rejected_with_its_hint(name, index):
    wrong, hint = EXERCISES[name].mistakes[index]
    with pytest.raises(ExerciseFailed) as info:
        check.exercise(name, wrong)
    assert hint in str(info.value)
