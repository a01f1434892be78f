"""Errors a user can cause. Each carries one clear sentence; the CLI prints it and exits non-zero."""

from __future__ import annotations


class UserError(Exception):
    """An expected failure: bad configuration, bad input, an unreachable database.

    The message is one sentence meant for the operator; it never contains a secret.
    """

    exit_code = 1


class DatabaseUnavailable(UserError):
    """The database cannot be reached or refuses our credentials."""

    exit_code = 3


class UnknownSchema(UserError):
    """The database holds tables MCB does not recognise as the original's or its own."""

    exit_code = 4


class VerificationFailed(UserError):
    """``mcb db verify`` found a failing check."""

    exit_code = 5


class DowngradeRefused(UserError):
    """A downgrade would lose or merge data, so nothing was changed."""

    exit_code = 6
