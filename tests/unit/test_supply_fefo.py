"""Kit selection for a patient's shipment, without a database: first expiry first out,
never a kit that runs out before the next resupply, only the patient's kind of kit, and
the same stock always giving the same pick."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dct_platform.errors import ValidationFailed
from logistics.supply.models import KitStatus
from logistics.supply.selection import KitFacts, NotEnoughKits, pick_kits

SHIP = date(2026, 4, 1)
NEXT = date(2026, 4, 29)  # the next resupply, four weeks later
PRODUCT, ARM, DEPOT = 1, "A", 10


def kit(number: str, expiry: date, **kw: object) -> KitFacts:
    base: dict[str, object] = dict(
        id=int(number.removeprefix("K")), kit_number=number, product_id=PRODUCT, lot="L1",
        expiry_date=expiry, depot_id=DEPOT, status=KitStatus.AVAILABLE, arm=ARM,
    )  # fmt: skip
    base.update(kw)
    return KitFacts(**base)


def pick(stock: list[KitFacts], needed: int, next_resupply: date = NEXT) -> list[KitFacts]:
    return pick_kits(
        stock, needed, SHIP, next_resupply, product_id=PRODUCT, arm=ARM, depot_id=DEPOT
    )


def numbers(kits: list[KitFacts]) -> list[str]:
    return [k.kit_number for k in kits]


def test_the_kits_expiring_first_go_first() -> None:
    stock = [
        kit("K1", date(2026, 9, 1)),
        kit("K2", date(2026, 6, 1)),
        kit("K3", date(2027, 1, 1)),
        kit("K4", date(2026, 7, 1)),
    ]
    assert numbers(pick(stock, 3)) == ["K2", "K4", "K1"]


@pytest.mark.parametrize(
    ("expiry", "shipped"),
    [
        (NEXT - timedelta(days=1), False),
        # Its last day is the day the next kits are due: no margin if they come late.
        (NEXT, False),
        (NEXT + timedelta(days=1), True),
    ],
    ids=["the day before", "on the day", "the day after"],
)
def test_a_kit_must_outlast_the_next_resupply_date(expiry: date, shipped: bool) -> None:
    stock = [kit("K1", expiry)]
    if shipped:
        assert numbers(pick(stock, 1)) == ["K1"]
    else:
        with pytest.raises(NotEnoughKits) as refused:
            pick(stock, 1)
        assert refused.value.details == {"found": 0, "needed": 1}


@pytest.mark.parametrize(
    "wrong",
    [
        {"arm": "B"},
        {"product_id": PRODUCT + 1},
        {"depot_id": DEPOT + 1},
        *({"status": s} for s in KitStatus if s is not KitStatus.AVAILABLE),
    ],
    ids=lambda w: f"{next(iter(w))}={next(iter(w.values()))}",
)
def test_a_kit_of_another_kind_or_not_available_is_skipped_however_early_it_expires(
    wrong: dict[str, object],
) -> None:
    stock = [kit("K1", date(2026, 5, 1), **wrong), kit("K2", date(2026, 12, 1))]
    assert numbers(pick(stock, 1)) == ["K2"]


def test_too_few_usable_kits_is_a_conflict_saying_how_many_were_found_and_needed() -> None:
    stock = [
        kit("K1", date(2026, 6, 1)),
        kit("K2", date(2026, 6, 2)),
        kit("K3", NEXT),  # too short
        kit("K4", date(2026, 6, 3), arm="B"),
    ]
    with pytest.raises(NotEnoughKits) as refused:
        pick(stock, 3)
    assert refused.value.status == 409
    assert refused.value.details == {"found": 2, "needed": 3}
    assert "Found 2 usable kits, 3 needed" in refused.value.message
    assert "2026-04-29" in refused.value.message


def test_ties_go_by_lot_then_kit_number_whatever_order_the_stock_comes_in() -> None:
    same_day = date(2026, 8, 1)
    stock = [
        kit("K5", same_day, lot="L2"),
        kit("K3", same_day, lot="L1", kit_number="KIT-0003"),
        kit("K1", same_day, lot="L1", kit_number="KIT-0001"),
        kit("K2", same_day, lot="L10"),
        kit("K9", date(2026, 7, 1), lot="L9"),
    ]
    expected = ["K9", "KIT-0001", "KIT-0003", "K2", "K5"]  # lots by code point: L1 < L10 < L2
    for seed in range(10):
        shuffled = random.Random(seed).sample(stock, len(stock))
        assert numbers(pick(shuffled, 5)) == expected


@pytest.mark.parametrize(
    ("needed", "next_resupply", "field"),
    [(0, NEXT, "count"), (1, SHIP - timedelta(days=1), "next_resupply")],
)
def test_an_impossible_request_is_refused(needed: int, next_resupply: date, field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        pick([kit("K1", date(2027, 1, 1))], needed, next_resupply)
    assert field in refused.value.details["fields"]


def stocks() -> st.SearchStrategy[list[KitFacts]]:
    one = st.tuples(
        st.dates(NEXT - timedelta(days=10), NEXT + timedelta(days=20)),
        st.sampled_from(["L1", "L2", "L10"]),
        st.sampled_from(["A", "B"]),
        st.sampled_from([PRODUCT, PRODUCT + 1]),
        st.sampled_from([DEPOT, DEPOT + 1]),
        st.sampled_from([KitStatus.AVAILABLE, KitStatus.AVAILABLE, KitStatus.RESERVED]),
    )
    return st.lists(one, max_size=25).map(
        lambda rows: [
            kit(f"K{i}", expiry, lot=lot, arm=arm, product_id=product, depot_id=depot, status=s)
            for i, (expiry, lot, arm, product, depot, s) in enumerate(rows)
        ]
    )


@settings(max_examples=300, deadline=None)
@given(stocks(), st.integers(1, 6))
def test_the_pick_is_always_the_earliest_expiring_kits_that_outlast_the_resupply(
    stock: list[KitFacts], needed: int
) -> None:
    def eligible(k: KitFacts) -> bool:
        return (
            k.status is KitStatus.AVAILABLE
            and (k.product_id, k.arm, k.depot_id) == (PRODUCT, ARM, DEPOT)
            and k.expiry_date > NEXT
        )

    usable = [k for k in stock if eligible(k)]
    try:
        picked = pick(stock, needed)
    except NotEnoughKits as refused:
        assert len(usable) < needed
        assert refused.details == {"found": len(usable), "needed": needed}
        return
    assert len(picked) == needed and len(set(picked)) == needed
    assert all(eligible(k) for k in picked)
    left = [k for k in usable if k not in picked]
    if left:
        assert max(k.expiry_date for k in picked) <= min(k.expiry_date for k in left)
    # The same stock in another order gives the same pick.
    assert pick(list(reversed(stock)), needed) == picked


def test_a_kit_is_never_picked_twice_even_if_listed_twice() -> None:
    # The caller's rows are the locked stock; a duplicate would mean one kit shipped twice.
    one = kit("K1", date(2026, 8, 1))
    stock = [one, replace(one), kit("K2", date(2026, 9, 1))]
    assert numbers(pick(stock, 2)) == ["K1", "K2"]
