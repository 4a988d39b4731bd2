"""The suite's own conftest: a module fixture that failed is not run again for the module's next test or a rerun."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).resolve().parents[1] / "conftest.py").read_text()


def test_a_failed_module_fixture_runs_once_even_with_reruns(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_memo="""
        import pytest

        CALLS = []

        @pytest.fixture(scope="module")
        def expensive():
            CALLS.append(1)
            raise RuntimeError("converge failed")

        @pytest.mark.flaky(reruns=2)
        def test_one(expensive):
            pass

        @pytest.mark.flaky(reruns=2)
        def test_two(expensive):
            pass

        def test_count():
            assert len(CALLS) == 1
    """)
    result = pytester.runpytest("-p", "rerunfailures", "-q")
    # Both tests error and are rerun twice each; the fixture itself ran once (test_count).
    assert result.parseoutcomes() == {"passed": 1, "errors": 2, "rerun": 4}
    result.stdout.fnmatch_lines(["*RuntimeError: converge failed*"])
