import pytest
import torch

from dlm.errors import ConfigError
from dlm.schedules import SCHEDULES, GeometricSchedule, LogLinearSchedule, get_schedule
from tests.conformance import load

ALL = [get_schedule("loglinear"), get_schedule("linear"), get_schedule("cosine"), get_schedule("geometric", sigma_min=1e-3, sigma_max=5.0)]


@pytest.mark.parametrize("schedule", ALL, ids=lambda s: s.name)
def test_rate_is_derivative_of_total(schedule):
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    h = 1e-6
    numeric = (schedule.total(t + h) - schedule.total(t - h)) / (2 * h)
    torch.testing.assert_close(schedule.rate(t), numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("schedule", ALL, ids=lambda s: s.name)
def test_time_at_alpha_inverts_alpha(schedule):
    t = torch.linspace(0.01, 0.99, 25, dtype=torch.float64)
    torch.testing.assert_close(schedule.time_at_alpha(schedule.alpha(t)), t, rtol=1e-7, atol=1e-9)
    generic = super(type(schedule), schedule).time_at_alpha(schedule.alpha(t))  # bisection of the base class
    torch.testing.assert_close(generic, t, rtol=1e-7, atol=1e-9)


def test_loglinear_values():
    s = LogLinearSchedule(eps=1e-3)
    assert float(s.total(0.0)) == 0.0
    assert float(s.alpha(1.0)) == pytest.approx(1e-3, rel=1e-12)  # α(1) = ε: 1 − (1−ε)·1
    assert float(s.alpha(0.25)) == pytest.approx(1 - 0.999 * 0.25, rel=1e-12)


def test_round_trip_through_dict():
    for s in ALL:
        d = s.to_dict()
        assert get_schedule(d.pop("name"), **d) == s


def test_unknown_schedule_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown noise schedule 'foo'"):
        get_schedule("foo")
    with pytest.raises(ConfigError, match="bad parameters"):
        get_schedule("loglinear", sigma_max=3)
    assert set(SCHEDULES) == {"loglinear", "linear", "cosine", "geometric"}


@pytest.mark.parametrize("kind", ["sedd", "mdlm"])
def test_schedules_match_upstream(kind):
    ref = load("schedules", kind)
    t = ref["t_grid"]
    torch.testing.assert_close(LogLinearSchedule().total(t), ref["loglinear_total"], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(LogLinearSchedule().rate(t), ref["loglinear_rate"], rtol=1e-6, atol=1e-6)
    if kind == "sedd":
        geo = GeometricSchedule(1e-4, 20.0)
        torch.testing.assert_close(geo.total(t), ref["geometric_total"], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(geo.rate(t), ref["geometric_rate"], rtol=1e-5, atol=1e-7)
