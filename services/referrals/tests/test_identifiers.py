"""Identifier rules a provider system meets when its data is wrong."""

from __future__ import annotations

import pytest
from referrals.domain import identifiers
from referrals.domain.errors import InvalidIdentifier


@pytest.mark.parametrize("number", ["9434765919", "943 476 5919", "4010232137"])
def test_valid_nhs_numbers_are_accepted_and_normalised(number: str) -> None:
    assert identifiers.nhs_number(number) == number.replace(" ", "")


@pytest.mark.parametrize(
    ("number", "rule"),
    [
        ("9434765918", "nhs_number_check_digit"),  # wrong check digit
        ("1000000010", "nhs_number_check_digit"),  # remainder gives check 10: never valid
        ("94347659", "nhs_number_format"),
        ("94347659AB", "nhs_number_format"),
    ],
)
def test_invalid_nhs_numbers_name_the_rule_broken(number: str, rule: str) -> None:
    with pytest.raises(InvalidIdentifier) as err:
        identifiers.nhs_number(number)
    assert err.value.rule == rule
    assert err.value.field == "patient.nhs_number"


@pytest.mark.parametrize(
    ("raw", "normalised", "district"),
    [
        ("bs5 0aa", "BS5 0AA", "BS5"),
        ("SW1A1AA", "SW1A 1AA", "SW1A"),
        ("M1 1AE", "M1 1AE", "M1"),
        ("cr2  6xh", "CR2 6XH", "CR2"),
    ],
)
def test_postcodes_are_normalised_with_their_district(
    raw: str, normalised: str, district: str
) -> None:
    assert identifiers.postcode(raw) == (normalised, district)


@pytest.mark.parametrize("raw", ["BS5", "12345", "BS5 0CA", "QQ1 1AA1", ""])
def test_postcodes_of_the_wrong_shape_are_refused(raw: str) -> None:
    with pytest.raises(InvalidIdentifier, match="postcode"):
        identifiers.postcode(raw)


@pytest.mark.parametrize(
    ("raw", "ok"), [("B81001", True), ("rxa01", True), ("AB", False), ("B81-001", False)]
)
def test_ods_codes(raw: str, ok: bool) -> None:
    if ok:
        assert identifiers.ods_code(raw, "referrer.organisation") == raw.upper()
    else:
        with pytest.raises(InvalidIdentifier, match=r"referrer\.organisation"):
            identifiers.ods_code(raw, "referrer.organisation")
