"""System check E006 (plugins_app/checks.py): warm runtimes, the standby runtime and one
call must fit under a worker's data limit; and the capacity model in
plugins_app/sandbox/snapshot.py."""

from __future__ import annotations

import pytest
from django.core import checks as django_checks
from django.test import override_settings

from plugins_app import checks, conf
from plugins_app.sandbox import snapshot


def e006() -> list[django_checks.CheckMessage]:
    return [m for m in checks.check_settings() if m.id == "plugins_app.E006"]


def test_defaults_pass() -> None:
    with override_settings(PLUGINS_APP={}):
        assert e006() == []
        assert "plugins_app.E006" not in {m.id for m in django_checks.run_checks(databases=[])}


def test_the_model_in_numbers() -> None:
    # An idle runtime of a <= 64 MiB plugin; V8's code range grows with the heap limit.
    assert snapshot.RUNTIME_RESERVE_MB == 72
    assert [snapshot.runtime_reserve_mb(m) for m in (8, 64, 128, 512, 2048)] == [72, 72, 136, 520, 520]
    # Defaults: 160 base + 12 x 72 + (520 - 72) for the largest plugin's runtime + 2 x 512 + 64.
    assert snapshot.worker_data_needed_mb(12, 512) == 160 + 12 * 72 + 448 + 1024 + 64 == 2560
    assert snapshot.warm_runtimes_that_fit(3072, 512) == 19
    assert snapshot.warm_runtimes_that_fit(3072, 64) == (3072 - 160 - 128 - 64) // 72 == 37
    assert snapshot.warm_runtimes_that_fit(1700, 512) == 0
    # n fit, n + 1 do not: the helper and the check's model agree at the boundary.
    for limit in (1800, 2000, 2560, 3072, 8192):
        for max_memory in (64, 128, 512):
            n = snapshot.warm_runtimes_that_fit(limit, max_memory)
            if n:
                assert snapshot.worker_data_needed_mb(n, max_memory) <= limit
            assert snapshot.worker_data_needed_mb(n + 1, max_memory) > limit


def test_too_many_warm_runtimes_are_refused_with_how_many_fit() -> None:
    with override_settings(PLUGINS_APP={"WARM_RUNTIMES_PER_WORKER": 30, "WORKER_DATA_LIMIT_MB": 3072}):
        [error] = e006()
    assert isinstance(error, django_checks.Error)
    assert "WARM_RUNTIMES_PER_WORKER = 30" in error.msg
    # 30 warm runtimes and the standby runtime.
    assert f"needs WORKER_DATA_LIMIT_MB >= {snapshot.worker_data_needed_mb(31, 512)}" in error.msg
    assert "only 18 warm runtimes fit" in error.msg
    assert "V8 aborts the worker" in error.hint and "standby" in error.hint


def test_the_default_is_as_many_as_fit_next_to_the_standby() -> None:
    for limit, max_memory in ((3072, 512), (8192, 64), (2000, 128)):
        with override_settings(PLUGINS_APP={"WORKER_DATA_LIMIT_MB": limit, "MAX_MEMORY_MB": max_memory}):
            warm = conf.warm_runtimes_per_worker()
            assert warm == snapshot.warm_runtimes_that_fit(limit, max_memory) - 1
            assert e006() == []
            assert snapshot.worker_data_needed_mb(warm + 1, max_memory) <= limit
    with override_settings(PLUGINS_APP={"WARM_RUNTIMES_PER_WORKER": 5}):
        assert conf.warm_runtimes_per_worker() == 5


def test_one_warm_runtime_is_singular() -> None:
    limit = snapshot.worker_data_needed_mb(2, 512)
    with override_settings(PLUGINS_APP={"WARM_RUNTIMES_PER_WORKER": 2, "WORKER_DATA_LIMIT_MB": limit}):
        [error] = e006()
    assert "only 1 warm runtime fits" in error.msg


def test_a_large_max_memory_counts_its_code_range_and_its_call() -> None:
    # 12 warm runtimes would fit with 64 MiB plugins, not with one 2000 MiB plugin calling.
    settings = {"WARM_RUNTIMES_PER_WORKER": 12, "MAX_MEMORY_MB": 64, "WORKER_DATA_LIMIT_MB": 1500}
    with override_settings(PLUGINS_APP=settings):
        assert e006() == []
    with override_settings(PLUGINS_APP={**settings, "MAX_MEMORY_MB": 2000, "WORKER_DATA_LIMIT_MB": 3072}):
        [error] = e006()
    assert "not even one runtime and one call of a plugin with MAX_MEMORY_MB = 2000 fit" in error.msg
    with override_settings(PLUGINS_APP={"MAX_MEMORY_MB": 2000, "WORKER_DATA_LIMIT_MB": 3072}):
        [error] = e006()  # the default (None) cannot fit anything either
    assert "WARM_RUNTIMES_PER_WORKER = None" in error.msg


def test_exactly_at_the_limit_passes() -> None:
    limit = snapshot.worker_data_needed_mb(13, 512)
    with override_settings(PLUGINS_APP={"WARM_RUNTIMES_PER_WORKER": 12, "WORKER_DATA_LIMIT_MB": limit}):
        assert e006() == []
    with override_settings(PLUGINS_APP={"WARM_RUNTIMES_PER_WORKER": 12, "WORKER_DATA_LIMIT_MB": limit - 1}):
        assert len(e006()) == 1


@pytest.mark.parametrize(
    "bad", [{"WARM_RUNTIMES_PER_WORKER": "12"}, {"MAX_MEMORY_MB": 0}, {"WORKER_DATA_LIMIT_MB": True}]
)
def test_invalid_values_are_e003_not_e006(bad: dict[str, object]) -> None:
    with override_settings(PLUGINS_APP=bad):
        found = {m.id for m in checks.check_settings()}
    assert "plugins_app.E003" in found and "plugins_app.E006" not in found


@pytest.mark.parametrize("depth", [0, 251, 10_000, "128"])
def test_a_data_depth_beyond_what_the_json_codec_nests_is_refused(depth: object) -> None:
    with override_settings(PLUGINS_APP={"MAX_DATA_DEPTH": depth}):
        errors = [m for m in checks.check_settings() if m.id == "plugins_app.E003"]
    assert errors and "MAX_DATA_DEPTH" in errors[0].msg
