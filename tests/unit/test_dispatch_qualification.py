"""Who may do a home visit, and a plan that never breaks it: the qualification rules one by
one, then random small days planned end to end (facts -> routing problem -> OR-Tools ->
plan) with every assignment checked against the rules, the nurse's hours in her zone, the
patient's hours in theirs, and her other visits."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dct_platform.localtime import local_window
from logistics import routing
from logistics.dispatch import planner
from logistics.dispatch.qualification import (
    Contract,
    Licence,
    NurseFacts,
    VisitFacts,
    WeeklyShift,
    reasons_against,
    region_codes,
    summarize,
)

DAY = date(2026, 3, 30)  # a Monday, the day after Berlin's spring-forward
NOW = datetime(2026, 3, 30, 5, 0, tzinfo=UTC)  # 07:00 in Berlin
TRIAL = 1
SITE = 10
PROVIDER = 100
CONTRACT = Contract(PROVIDER, SITE, frozenset(), date(2026, 1, 1))
SKILLS = ("phlebotomy", "ecg", "vital_signs", "imp_administration")


def nurse(**kw: object) -> NurseFacts:
    base: dict[str, object] = dict(
        user_id=1, name="Ada", provider_id=PROVIDER, zone="Europe/Berlin", home=(52.5, 13.4),
        skills=frozenset({"phlebotomy", "vital_signs"}), licences=(Licence("DE", DAY),),
        trainings=frozenset({(TRIAL, "2.0")}), postal_prefixes=("10",),
        shifts=(WeeklyShift(0, time(8), time(16)),),
    )  # fmt: skip
    base.update(kw)
    return NurseFacts(**base)  # type: ignore[arg-type]


def visit(**kw: object) -> VisitFacts:
    base: dict[str, object] = dict(
        visit_id=7, site_id=SITE, trial_id=TRIAL, protocol_version="2.0",
        skills=frozenset({"phlebotomy"}), country="DE", subdivision="BE", postal_code="10115",
        location=(52.52, 13.405),
    )  # fmt: skip
    base.update(kw)
    return VisitFacts(**base)  # type: ignore[arg-type]


def test_a_nurse_who_meets_every_rule_may_do_the_visit() -> None:
    assert reasons_against(nurse(), visit(), DAY, [CONTRACT]) == []


def test_each_rule_refuses_in_its_own_words() -> None:
    cases = {
        "lacks ecg": visit(skills=frozenset({"phlebotomy", "ecg"})),
        "not trained on protocol version 3.0": visit(protocol_version="3.0"),
        "outside her territory": visit(postal_code="80331", location=(48.14, 11.58)),
        "declined this visit": visit(declined_by=frozenset({1})),
        "no licence valid for US, US-NY": visit(country="US", subdivision="NY"),
    }
    for expected, facts in cases.items():
        assert expected in reasons_against(nurse(), facts, DAY, [CONTRACT])
    assert "not working that day" in reasons_against(
        nurse(), visit(), DAY + timedelta(1), [CONTRACT]
    )
    away = nurse(absences=((DAY, DAY),))
    assert "not working that day" in reasons_against(away, visit(), DAY, [CONTRACT])
    assert reasons_against(nurse(), visit(), DAY, []) == [
        "her provider does not serve this site or region"
    ]


def test_a_licence_counts_through_its_last_day_and_a_state_licence_only_in_its_state() -> None:
    assert not reasons_against(nurse(licences=(Licence("DE", DAY),)), visit(), DAY, [CONTRACT])
    expired = nurse(licences=(Licence("DE", DAY - timedelta(days=1)),))
    assert reasons_against(expired, visit(), DAY, [CONTRACT]) == ["no licence valid for DE, DE-BE"]
    ny = nurse(licences=(Licence("US-NY", DAY),))
    assert not reasons_against(ny, visit(country="US", subdivision="NY"), DAY, [CONTRACT])
    assert reasons_against(ny, visit(country="US", subdivision="NJ"), DAY, [CONTRACT])
    assert region_codes("us", "US-NY") == {"US", "US-NY"}


def test_a_radius_territory_and_a_contract_limited_to_regions() -> None:
    radius = nurse(postal_prefixes=(), radius_km=5.0)
    assert not reasons_against(radius, visit(), DAY, [CONTRACT])
    assert "outside her territory" in reasons_against(
        radius, visit(location=(52.60, 13.40), postal_code="13000"), DAY, [CONTRACT]
    )
    only_bavaria = Contract(PROVIDER, SITE, frozenset({"DE-BY"}), date(2026, 1, 1))
    assert reasons_against(nurse(), visit(), DAY, [only_bavaria])
    ended = Contract(PROVIDER, SITE, frozenset(), date(2026, 1, 1), DAY - timedelta(days=1))
    assert reasons_against(nurse(), visit(), DAY, [ended])


def test_nobody_qualified_is_summarized_by_what_everyone_lacks() -> None:
    assert summarize({"Ada": ["lacks ecg"], "Bea": ["lacks ecg", "outside her territory"]}) == (
        "no qualified nurse: every nurse lacks ecg"
    )
    assert "nearest: Ada" in summarize({"Ada": ["lacks ecg"], "Bea": ["declined this visit", "x"]})
    assert summarize({}) == "no nurse of a provider serving this site"


# --- random days, planned end to end --------------------------------------------------


@st.composite
def days(draw: st.DrawFn) -> tuple[list[NurseFacts], list[planner.VisitToPlan]]:
    nurses = []
    for i in range(draw(st.integers(1, 4))):
        start = draw(st.integers(6, 12))
        end = draw(st.integers(start + 2, 20))
        nurses.append(
            nurse(
                user_id=i + 1,
                name=f"N{i}",
                home=(52.45 + draw(st.floats(0, 0.1)), 13.3 + draw(st.floats(0, 0.2))),
                skills=frozenset(draw(st.sets(st.sampled_from(SKILLS), min_size=2, max_size=4))),
                licences=(Licence("DE", DAY + timedelta(days=draw(st.integers(-1, 6)))),),
                trainings=frozenset({(TRIAL, draw(st.sampled_from(["1.0", "2.0", "2.0", "2.0"])))}),
                postal_prefixes=(draw(st.sampled_from(["10", "12", "1", "1"])),),
                shifts=(WeeklyShift(draw(st.sampled_from([0, 0, 0, 1])), time(start), time(end)),),
                absences=((DAY, DAY),) if draw(st.integers(0, 5)) == 0 else (),
            )
        )
    visits = []
    for j in range(draw(st.integers(1, 8))):
        start = draw(st.integers(7, 15))
        visits.append(
            planner.VisitToPlan(
                id=j + 1,
                version=1,
                facts=visit(
                    visit_id=j + 1,
                    skills=frozenset(
                        draw(st.sets(st.sampled_from(SKILLS), min_size=1, max_size=2))
                    ),
                    postal_code=draw(st.sampled_from(["10115", "12049", "13353"])),
                    location=(52.45 + draw(st.floats(0, 0.1)), 13.3 + draw(st.floats(0, 0.2))),
                ),
                zone="Europe/Berlin",
                day_start=time(start),
                day_end=time(draw(st.integers(start + 1, 19))),
                duration=draw(st.sampled_from([20, 30, 45, 60])),
                window_last=DAY + timedelta(days=draw(st.integers(0, 3))),
                pinned_nurse_id=draw(st.sampled_from([None, None, None, 1])),
            )
        )
    return nurses, visits


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(days())
def test_a_plan_never_breaks_qualification_hours_or_windows(
    case: tuple[list[NurseFacts], list[planner.VisitToPlan]],
) -> None:
    nurses, visits = case
    travel = lambda pts: routing.GreatCircle(pts, 30.0)  # noqa: E731
    inp = planner.build_day(DAY, NOW, nurses, [CONTRACT], visits, travel)
    plan = planner.solve(inp, planner.Settings(time_limit_s=0.5))
    by_id = {n.user_id: n for n in nurses}
    by_visit = {v.id: v for v in visits}
    for key, stops in plan.routes.items():
        n = by_id[inp.nurses[key]]
        shifts = [local_window(DAY, s.start, s.end, n.zone) for s in n.shifts if s.weekday == 0]
        previous_end = None
        for stop in stops:
            v = by_visit[int(stop.task[1:])]
            assert v.facts is not None
            assert reasons_against(n, v.facts, DAY, [CONTRACT]) == []
            if v.pinned_nurse_id is not None:
                assert v.pinned_nurse_id == n.user_id
            start, end = inp.at(stop.start), inp.at(stop.end)
            assert start >= NOW
            assert any(w.start <= start and end <= w.end for w in shifts)
            window = local_window(DAY, v.day_start, v.day_end, v.zone)
            assert window.start <= start and end <= window.end
            assert end - start == timedelta(minutes=v.duration)
            if previous_end is not None:
                assert start >= previous_end
            previous_end = end
    placed = {int(s.task[1:]) for stops in plan.routes.values() for s in stops}
    for v in visits:
        if v.id not in placed:
            assert inp.unplannable.get(v.id) or plan.unassigned.get(f"v{v.id}")
