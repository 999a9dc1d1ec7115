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


# A second test exercise, checked by check_cases: centre a vector (x - mean).
def _centre(x):
    return x - x.mean()


def _centre_by_first(x):
    return x - x[0]


_CENTRE_CASES = [("x = [1, 2, 3]", (torch.tensor([1.0, 2.0, 3.0]),)),
                 ("x = [1, 5, 3, 7]", (torch.tensor([1.0, 5.0, 3.0, 7.0]),))]
check.register(Exercise("testing.centre",
                        lambda fn: check.check_cases(fn, _centre, _CENTRE_CASES, [(_centre_by_first, "first")]),
                        _centre, [(_centre_by_first, "first")]))


def test_check_cases_reports_an_input_changed_in_place():
    def in_place(x):
        x -= x.mean()
        return x

    with pytest.raises(ExerciseFailed, match="changed its input `x` in place"):
        check.exercise("testing.centre", in_place)


def test_check_cases_accepts_float64_and_a_python_number_for_a_scalar(capsys):
    check.exercise("testing.centre", lambda x: x.double() - x.double().mean())
    compare(2.0, torch.tensor(2.0), inputs="i")
    compare(torch.tensor(2.0, dtype=torch.float64), torch.tensor(2.0), inputs="i")
    with pytest.raises(Mismatch, match="dtype torch.int64, got torch.float32"):
        compare(torch.tensor([2.0]), torch.tensor([2]), inputs="i")


def test_a_hint_needs_the_mistake_on_every_case():
    # Equal to the planted mistake on every case: the hint is given.
    with pytest.raises(ExerciseFailed, match="Hint: first"):
        check.exercise("testing.centre", _centre_by_first)

    def like_the_mistake_once(x):  # the mistake's output on the first case, something else later
        return x - x[0] if len(x) == 3 else x * 0

    with pytest.raises(ExerciseFailed) as info:
        check.exercise("testing.centre", like_the_mistake_once)
    assert "Hint" not in str(info.value)


def test_a_loop_that_catches_exceptions_cannot_make_the_check_hang():
    def stubborn(x):
        while True:
            try:
                __import__("time").sleep(10)
            except Exception:
                pass

    with pytest.raises(ExerciseFailed, match="did not return within 0.3 s"):
        check.exercise("testing.centre", stubborn, timeout=0.3)


def test_an_operation_torch_does_not_implement_is_a_wrong_answer_not_a_stub():
    def uses_bitwise_and_on_floats(x):
        return x & x  # torch: NotImplementedError with a message

    with pytest.raises(ExerciseFailed, match="raised NotImplementedError"):
        check.exercise("testing.centre", uses_bitwise_and_on_floats)


def test_the_failing_line_is_the_readers_not_torchs():
    def broken(x):
        return torch.nn.functional.linear(x, torch.ones(5, 5))  # wrong shape inside torch

    with pytest.raises(ExerciseFailed, match=r"at line \d+: return torch.nn.functional.linear"):
        check.exercise("testing.centre", broken)
