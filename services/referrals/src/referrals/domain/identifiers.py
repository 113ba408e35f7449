"""Identifier rules: NHS number (Modulus 11), ODS organisation codes, UK postcodes; a sender's
own identifier for what it sent."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidIdentifier


@dataclass(frozen=True)
class Identifier:
    """A sender's own identifier for something it sent (a system and a value), by which its
    system finds it again: a referral's (FHIR ServiceRequest.identifier) or a document's
    (DocumentReference.masterIdentifier)."""

    system: str
    value: str


_ODS = re.compile(r"^[A-Z0-9]{3,10}$")
# BS 7666 postcode shapes: A9 9AA, A99 9AA, AA9 9AA, AA99 9AA, A9A 9AA, AA9A 9AA.
_POSTCODE = re.compile(
    r"^(?P<outward>[A-Z]{1,2}[0-9][A-Z0-9]?) ?(?P<inward>[0-9][ABD-HJLNP-UW-Z]{2})$"
)


def nhs_number(value: str, field: str = "patient.nhs_number") -> str:
    """A 10-digit NHS number whose last digit is its Modulus 11 check digit; spaces allowed."""
    digits = value.replace(" ", "")
    if not re.fullmatch(r"\d{10}", digits):
        raise InvalidIdentifier(field, "nhs_number_format", "an NHS number has 10 digits")
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    if check == 10 or check != int(digits[9]):
        raise InvalidIdentifier(
            field, "nhs_number_check_digit", "the Modulus 11 check digit is wrong"
        )
    return digits


def ods_code(value: str, field: str) -> str:
    """An ODS organisation code: 3–10 upper-case letters and digits."""
    code = value.strip().upper()
    if not _ODS.fullmatch(code):
        raise InvalidIdentifier(field, "ods_code", "an ODS code is 3 to 10 letters and digits")
    return code


def postcode(value: str, field: str = "patient.postcode") -> tuple[str, str]:
    """Normalised postcode ("BS5 0AA") and its outward code (district, "BS5")."""
    match = _POSTCODE.fullmatch(re.sub(r"\s+", " ", value.strip().upper()))
    if not match:
        raise InvalidIdentifier(field, "postcode_format", "not a UK postcode shape such as BS5 0AA")
    return f"{match['outward']} {match['inward']}", match["outward"]
