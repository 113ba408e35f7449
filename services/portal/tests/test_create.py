"""The new-referral form's body for the API: the sharing basis chosen goes with it."""

from __future__ import annotations

from portal.entrypoints.routes_create import referral_body


def test_the_chosen_sharing_basis_goes_with_the_referral_and_none_is_left_out() -> None:
    form = {"patient.postcode": "BS5 0AA", "service_type": "social-care-assessment"}
    body = referral_body({**form, "consent": "best-interests"}, "B81001", "G1234567")
    assert body["consent"] == {"basis": "best-interests"}
    assert "consent" not in referral_body(form, "B81001", "G1234567")
