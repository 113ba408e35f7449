"""Referral Exchange portal (``python -m portal``)."""
