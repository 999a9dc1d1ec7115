import pytest
import torch

import dlpt
from dlpt import check
from dlpt.check import Exercise, ExerciseFailed, Mismatch, call, compare


def test_claim_prints_statement_and_figures(capsys):
    dlpt.claim(True, "two is more than one", a=2, b=1.23456789, t=torch.tensor(0.5))
    assert capsys.readouterr().out == "✓ two is more than one (a=2, b=1.235, t=0.5)\n"


def test_claim_raises_naming_statement_and_figures():
    with pytest.raises(dlpt.ClaimError) as info:
        dlpt.claim(1 > 2, "one is more than two", one=1, two=2)
    assert "one is more than two" in str(info.value)
    assert "one=1, two=2" in str(info.value)
    assert info.value.figures == {"one": 1, "two": 2}


def test_claim_accepts_a_one_element_tensor_and_refuses_a_larger_one():
    dlpt.claim(torch.tensor(True), "a tensor truth value")
    with pytest.raises(ValueError, match="shape"):
        dlpt.claim(torch.tensor([True, False]), "ambiguous")


def test_claims_are_recorded_for_the_runner():
    before = len(check.claims_made())
    dlpt.claim(True, "recorded")
    with pytest.raises(dlpt.ClaimError):
        dlpt.claim(False, "also recorded")
    made = check.claims_made()[before:]
    assert [(s, held) for s, held, _ in made] == [("recorded", True), ("also recorded", False)]


def test_claim_error_renders_without_a_traceback_in_ipython():
    error = dlpt.ClaimError("x", {"a": 1})
    assert error._render_traceback_() == ["ClaimError: claim does not hold: x (a=1)"]


# A tiny exercise registered for these tests: double a tensor.
def _double(x):
    return 2 * x


def _check_double(fn):
    x = torch.arange(6.0).reshape(2, 3)
    got = call(fn, x, inputs="x = arange(6).reshape(2, 3)")
    compare(got, _double(x), inputs="x = arange(6).reshape(2, 3)", mistakes=[(x + 2, "you added 2")])
    return 1


check.register(Exercise("testing.double", _check_double, _double, [(lambda x: x + 2, "you added 2")]))


def test_exercise_passes_a_right_answer(capsys):
    check.exercise("testing.double", lambda x: x * 2)
    assert capsys.readouterr().out == "✓ testing.double: its check passed\n"


def test_exercise_reports_a_wrong_value_with_input_expected_and_got():
    with pytest.raises(ExerciseFailed) as info:
        check.exercise("testing.double", lambda x: x * 3)
    message = str(info.value)
    assert "x = arange(6).reshape(2, 3)" in message
    assert "expected 10, got 15" in message  # the largest difference, at index (1, 2)
    assert "index (1, 2)" in message


def test_exercise_names_a_known_mistake():
    with pytest.raises(ExerciseFailed, match="Hint: you added 2"):
        check.exercise("testing.double", lambda x: x + 2)


def test_exercise_reports_shape_and_dtype():
    with pytest.raises(ExerciseFailed, match=r"shape \(2, 3\), got shape \(6,\)"):
        check.exercise("testing.double", lambda x: (2 * x).flatten())
    with pytest.raises(ExerciseFailed, match="dtype torch.float32, got torch.int64"):
        check.exercise("testing.double", lambda x: (2 * x).long())
    with pytest.raises(ExerciseFailed, match="should be a torch tensor"):
        check.exercise("testing.double", lambda x: (2 * x).tolist())


def test_exercise_reports_an_exception_readably():
    def broken(x):
        return x.no_such_method()

    with pytest.raises(ExerciseFailed) as info:
        check.exercise("testing.double", broken)
    message = str(info.value)
    assert "raised AttributeError" in message
    assert "x.no_such_method()" in message  # the line of the reader's code
    assert info.value._render_traceback_() == [f"ExerciseFailed: {message}"]


def test_exercise_stops_a_function_that_hangs():
    def hangs(x):
        while True:
            pass

    with pytest.raises(ExerciseFailed, match="did not return within 0.3 s"):
        check.exercise("testing.double", hangs, timeout=0.3)


def test_exercise_stops_a_hang_off_the_main_thread_too():
    import threading

    result = {}

    def in_thread():
        try:
            check.exercise("testing.double", lambda x: __import__("time").sleep(5), timeout=0.3)
        except ExerciseFailed as error:
            result["error"] = str(error)

    worker = threading.Thread(target=in_thread)
    worker.start()
    worker.join(3)
    assert "did not return within 0.3 s" in result["error"]


def test_not_attempted_is_said_and_does_not_raise(capsys):
    def stub(x):
        raise NotImplementedError

    assert check.exercise("testing.double", stub) is None
    assert "not attempted yet" in capsys.readouterr().out


def test_unknown_exercise_and_non_function_are_refused():
    with pytest.raises(KeyError, match="no exercise named 'testing.nothing'"):
        check.exercise("testing.nothing", _double)
    with pytest.raises(ExerciseFailed, match="expected a function"):
        check.exercise("testing.double", 42)


def test_compare_checks_tuples_element_by_element():
    compare((torch.ones(2), 3), (torch.ones(2), 3), inputs="i")
    with pytest.raises(Mismatch, match=r"result\[1\] is wrong"):
        compare((torch.ones(2), 4), (torch.ones(2), 3), inputs="i")
    with pytest.raises(Mismatch, match="tuple of 2 values"):
        compare(torch.ones(2), (torch.ones(2), 3), inputs="i")


def test_compare_flags_non_finite_values():
    with pytest.raises(Mismatch, match="non-finite"):
        compare(torch.tensor([1.0, float("nan")]), torch.tensor([1.0, 2.0]), inputs="i")
