"""Equal platforms take turns: `rotation` says which one wins ties, so requests spread out."""

from broker.scheduling.offers import OfferPolicy, make_offers
from tests.unit.broker.test_offers import NOW, demand, platform

EQUAL = [platform("a"), platform("b"), platform("c")]
ONE = OfferPolicy(max_offers=1, strategies=("earliest",))


def first_platform(rotation: int) -> str:
    found = make_offers(EQUAL, [], demand(), NOW, ONE, rotation=rotation)
    return found.offers[0].platform


def test_ties_go_to_the_platform_the_rotation_points_at_then_wrap_round():
    assert [first_platform(r) for r in range(4)] == ["a", "b", "c", "a"]
