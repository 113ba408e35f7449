"""The FHIR R4 interface of the referrals service, mounted at /fhir/R4 (see docs/fhir.md)."""
