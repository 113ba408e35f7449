"""People who sign in (OpenID Connect): each belongs to one organisation, has a professional id
and job roles. Their tokens carry the organisation, the provider role and the practitioner, so
the services take who acted from the signed token.

A user registry is a JSON file ``{"users": [{...}, ...]}`` of :class:`User` entries. Passwords
are stored as scrypt hashes (``scrypt$n$r$p$salt$hash``, base64). Without a file the demo users
are used, which only development allows."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from enum import StrEnum
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from rx_contracts import ProviderType
from rx_web.settings import DefaultSecretError, Environment

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class JobRole(StrEnum):
    """What a person does in their organisation; the portal offers actions by these."""

    REFERRER = "referrer"
    """Sends referrals: create, amend, cancel."""
    CLINICIAN = "clinician"
    """Works the referrals assigned to the team: accept, reject, redirect, start, complete."""
    TEAM_LEAD = "team-lead"
    """Both of the above."""


class User(BaseModel):
    """One person who may sign in, and the claims their tokens carry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$", description="Sign-in name.")
    password_hash: str = Field(pattern=r"^scrypt\$", description="scrypt hash of the password.")
    name: str = Field(min_length=1, max_length=200, description="Full name, for people.")
    organisation: str = Field(pattern=r"^[A-Z0-9]{3,10}$", description="ODS code they act for.")
    provider_type: ProviderType | None = Field(default=None, description="Their org's type.")
    practitioner: str = Field(
        pattern=r"^[A-Za-z0-9._-]{1,64}$", description="Professional id (GMC, NMC, HCPC…)."
    )
    job_roles: frozenset[JobRole] = Field(min_length=1, description="What they do.")

    def password_matches(self, password: str) -> bool:
        return verify_password(password, self.password_hash)


class Users(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[User]

    def get(self, username: str) -> User | None:
        return next((u for u in self.users if u.username == username), None)

    def authenticate(self, username: str, password: str) -> User | None:
        """The user, if the password is theirs. An unknown name costs a hash too, so timing
        does not tell which names exist."""
        user = self.get(username.strip().lower())
        if user is None:
            verify_password(password, _DUMMY_HASH)
            return None
        return user if user.password_matches(password) else None


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    return (
        f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}$"
        f"{b64(salt).decode()}${b64(digest).decode()}"
    )


def verify_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


_DUMMY_HASH = hash_password("not a password", salt=b"0" * 16)


def demo_password(username: str) -> str:
    """The documented password of a demo user (README, the portal section)."""
    return f"{username}-demo-password"


def demo_users() -> Users:
    text = resources.files("issuer").joinpath("demo_users.json").read_text()
    return Users.model_validate_json(text)


def load_users(path: Path | None, environment: Environment) -> Users:
    """The users of ``path``, or the demo users when there is none (development only).
    Outside development a registry holding a demo password is refused too."""
    if path is None:
        if environment is not Environment.DEVELOPMENT:
            raise DefaultSecretError(
                f"RX_ENV={environment.value} refuses the demo users: set ISSUER_USERS_FILE"
            )
        return demo_users()
    users = Users.model_validate(json.loads(path.read_text()))
    if environment is not Environment.DEVELOPMENT:
        reused = sorted(
            u.username for u in users.users if u.password_matches(demo_password(u.username))
        )
        if reused:
            raise DefaultSecretError(
                f"RX_ENV={environment.value} refuses demo passwords for users {reused}"
            )
    return users
