"""API request and response bodies of the routing service. Unknown fields are refused."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat
from rx_contracts import Priority, ProviderType, ServiceType
from rx_web.params import IsoDateTime

from ...domain.clock import DAYS
from ...domain.directory import LOCALITY_CODE, ODS_CODE, POSTCODE_DISTRICT

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Cohort = Literal["care_home_resident", "frailty", "end_of_life"]
HOURS_EXAMPLE = {"mon": ["08:00-18:30"], "tue": ["08:00-18:30"], "sat": ["09:00-13:00"]}

INT_MAX = 2**31 - 1
"""The largest count or time limit the database stores (a 32-bit integer column)."""

# The shapes the domain checks (domain/directory.py, domain/clock.py), written into the schema
# only, so that a refusal names the domain's own rule.
_HHMM = "([01][0-9]|2[0-3]):[0-5][0-9]"
TIME_FROM: dict[str, Any] = {"pattern": f"^{_HHMM}$"}
TIME_TO: dict[str, Any] = {"pattern": f"^({_HHMM}|24:00)$"}
SPAN = rf"^\s*{_HHMM}\s*-\s*({_HHMM}|24:00)\s*$"
ODS_CODES: dict[str, Any] = {"items": {"pattern": ODS_CODE.pattern}, "uniqueItems": True}
LOCALITY_CODES: dict[str, Any] = {"items": {"pattern": LOCALITY_CODE.pattern}}


class Strict(BaseModel):
    """Unknown fields are refused; booleans and fractions must be JSON booleans and numbers
    (Strict* types), as the schema says, not text or 0/1. Integers stay lax: JSON Schema counts
    4911.0 as an integer too."""

    model_config = ConfigDict(extra="forbid")


# ---- directory ---------------------------------------------------------------------------


class LocalityIn(Strict):
    """A locality and the postcode districts (outward codes) it covers."""

    name: str = Field(min_length=1, max_length=200, examples=["East"])
    population: int = Field(ge=0, le=INT_MAX, description="People living there.", examples=[38900])
    districts: list[str] = Field(
        min_length=1,
        description="Postcode districts (outward codes, capitals), each in no other locality.",
        examples=[["BS5", "BS15"]],
        json_schema_extra={"items": {"pattern": POSTCODE_DISTRICT.pattern}, "uniqueItems": True},
    )


class LocalityPublic(BaseModel):
    code: str
    name: str
    population: int
    districts: list[str]


class OrganisationBody(Strict):
    """An organisation's details (the ODS code is in the path for a replace)."""

    name: str = Field(min_length=1, max_length=200, examples=["City Urgent Community Response"])
    provider_type: ProviderType
    localities: list[str] = Field(
        min_length=1,
        description="Codes of the localities it serves, each one in the directory "
        "(GET /localities).",
        examples=[["central", "east"]],
        json_schema_extra=LOCALITY_CODES,
    )
    opening_hours: dict[str, list[str]] | None = Field(
        default=None,
        description="Europe/London local hours per weekday (mon…sun) as HH:MM-HH:MM spans, "
        "each starting before it ends and not overlapping the day's others; a weekday left "
        "out is closed, 00:00-24:00 is all day; null means always open.",
        examples=[HOURS_EXAMPLE],
        json_schema_extra={
            "propertyNames": {"enum": list(DAYS)},
            "additionalProperties": {"type": "array", "items": {"type": "string", "pattern": SPAN}},
        },
    )
    daily_capacity: int | None = Field(
        default=None,
        ge=0,
        le=INT_MAX,
        description="Referrals it can be given per local day (declined ones do not count); "
        "null means no limit.",
        examples=[40],
    )
    active: StrictBool = Field(default=True, description="Inactive organisations are never chosen.")


class OrganisationCreate(OrganisationBody):
    ods_code: str = Field(
        pattern=r"^[A-Z0-9]{3,10}$", description="ODS organisation code.", examples=["RXA03"]
    )


class OrganisationPublic(BaseModel):
    ods_code: str
    name: str
    provider_type: ProviderType
    localities: list[str]
    opening_hours: dict[str, list[str]] | None
    daily_capacity: int | None
    active: bool
    updated_at: datetime


# ---- rules -------------------------------------------------------------------------------


class HoursIn(Strict):
    """A local (Europe/London) time-of-day window; from after to crosses midnight."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(
        alias="from",
        examples=["08:00"],
        description="HH:MM, inclusive.",
        json_schema_extra=TIME_FROM,
    )
    to: str = Field(
        examples=["20:00"],
        description="HH:MM, exclusive (24:00 allowed); not the same time as from.",
        json_schema_extra=TIME_TO,
    )
    days: list[Weekday] = Field(
        default_factory=list, description="Local weekdays it applies on; empty: every day."
    )


class RuleIn(Strict):
    """One rule. Each condition given must hold (an empty list matches anything; within a
    list any one value matches). The first matching rule with an eligible candidate wins."""

    id: str = Field(min_length=1, max_length=64, examples=["ucr-daytime"])
    service_types: list[ServiceType] = Field(default_factory=list)
    priorities: list[Priority] = Field(default_factory=list)
    cohorts: list[Cohort] = Field(
        default_factory=list, description="The referral has at least one of these flags."
    )
    hours: HoursIn | None = Field(default=None, description="Only at these local times.")
    candidates: list[str] = Field(
        min_length=1,
        description="ODS codes in the order they are offered the referral; each must be in "
        "the directory and serve the locality.",
        examples=[["RXA01", "RXA02"]],
        json_schema_extra=ODS_CODES,
    )


class RuleSetCreate(Strict):
    """A new version of a locality's rules (inactive until activated)."""

    description: str | None = Field(default=None, max_length=500)
    rules: list[RuleIn] = Field(min_length=1, description="Rule ids are unique within the set.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "description": "night cover by the north team",
                    "rules": [
                        {
                            "id": "ucr-day",
                            "service_types": ["urgent-community-response"],
                            "hours": {"from": "08:00", "to": "20:00"},
                            "candidates": ["RXA01", "RXA02"],
                        },
                        {
                            "id": "ucr-night",
                            "service_types": ["urgent-community-response"],
                            "candidates": ["RXA02"],
                        },
                    ],
                }
            ]
        },
    )

    def rules_json(self) -> list[dict[str, Any]]:
        return [rule.model_dump(by_alias=True) for rule in self.rules]


class RuleSetPublic(BaseModel):
    locality: str
    version: int
    active: bool
    description: str | None
    rules: list[dict[str, Any]]
    created_by: str
    created_at: datetime
    activated_at: datetime | None


# ---- SLA policies ------------------------------------------------------------------------

SECONDS_MAX = INT_MAX


class PolicyIn(Strict):
    """Deadlines for one service type and priority. Times in seconds."""

    accept_within_seconds: int | None = Field(
        default=None,
        description="From routing until the organisation accepts.",
        examples=[1800],
        le=SECONDS_MAX,
        json_schema_extra={"minimum": 1},
    )
    respond_within_seconds: int | None = Field(
        default=None,
        description="From submission until work with the patient starts.",
        examples=[7200],
        le=SECONDS_MAX,
        json_schema_extra={"minimum": 1},
    )
    warn_at_fraction: StrictFloat | None = Field(
        default=0.75,
        description="Warn when this share of the time has gone (strictly between 0 and 1); "
        "null: never.",
        json_schema_extra={"exclusiveMinimum": 0, "exclusiveMaximum": 1},
    )
    auto_reroute: StrictBool = Field(
        default=False,
        description="On an acceptance breach the platform takes the referral from the "
        "organisation and routes it to the next one; needs accept_within_seconds.",
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "allOf": [
                {  # at least one limit
                    "anyOf": [
                        {
                            "required": ["accept_within_seconds"],
                            "properties": {"accept_within_seconds": {"type": "integer"}},
                        },
                        {
                            "required": ["respond_within_seconds"],
                            "properties": {"respond_within_seconds": {"type": "integer"}},
                        },
                    ]
                },
                {  # re-routing only with an acceptance limit to run out
                    "anyOf": [
                        {"properties": {"auto_reroute": {"const": False}}},
                        {
                            "required": ["accept_within_seconds"],
                            "properties": {"accept_within_seconds": {"type": "integer"}},
                        },
                    ]
                },
            ]
        },
    )


class PolicyPublic(BaseModel):
    service_type: ServiceType
    priority: str = Field(description="A priority, or '*' for the service type's others.")
    accept_within_seconds: int | None
    respond_within_seconds: int | None
    warn_at_fraction: float | None
    auto_reroute: bool
    version: int
    updated_at: datetime


# ---- decisions ---------------------------------------------------------------------------


class DecisionPublic(BaseModel):
    id: str
    referral_id: str
    attempt: int
    outcome: str
    assigned_org: str | None
    provider_type: str | None
    locality: str | None
    rule_id: str | None = Field(description="<locality>/<rule id> that chose the organisation.")
    rule_version: int | None = Field(description="Version of that locality's rule set.")
    reason: str | None
    decided_at: datetime
    accepted_at: datetime | None
    released_at: datetime | None
    release: str | None


# ---- replay --------------------------------------------------------------------------------


class ProposedRuleSetIn(Strict):
    locality: str = Field(
        examples=["east"],
        description="A locality in the directory, once per request.",
        json_schema_extra={"pattern": LOCALITY_CODE.pattern},
    )
    rules: list[RuleIn] = Field(min_length=1)


WITH_OFFSET: dict[str, Any] = {"pattern": r"(Z|[+-]([01]\d|2[0-3]):?[0-5]\d)$"}
"""A replay window's ends need their offset (its own rule, besides the date-time shape)."""


class ReplayRequest(Strict):
    """Proposed rule sets (localities left out keep their live rules) and the window of
    submissions to replay."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: IsoDateTime = Field(
        alias="from",
        description="Start (inclusive), with its offset.",
        json_schema_extra=WITH_OFFSET,
    )
    to: IsoDateTime = Field(
        description="End (exclusive), with its offset; after from.", json_schema_extra=WITH_OFFSET
    )
    rule_sets: list[ProposedRuleSetIn] = Field(min_length=1)
