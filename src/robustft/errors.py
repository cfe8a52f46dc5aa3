"""User-facing errors.

Every error a user can cause (bad config, unknown name, missing asset, corrupt checkpoint, NaN loss) is a
``RobustftError``: its message is one paragraph that says what went wrong and how to fix it. The CLI prints
it without a traceback and exits with status 2; library users can catch the base class.
"""

from __future__ import annotations


class RobustftError(Exception):
    """Base class of errors caused by input the user can fix; the message names the fix."""


class UnknownNameError(RobustftError, KeyError):
    """A name that is not in a registry (model, dataset, strategy, attack, schedule, objective, option)."""

    def __str__(self) -> str:  # KeyError would repr() the message and add quotes
        return str(self.args[0]) if self.args else ""


class ConfigError(RobustftError, ValueError):
    """A configuration value of the wrong type or out of range."""


class MissingAssetError(RobustftError, FileNotFoundError):
    """An embedded asset (weights, dataset) is not installed; the message gives the install command."""


class ChecksumError(RobustftError):
    """A file's sha256 does not match the expected digest (tampered or truncated download)."""


class OfflineError(RobustftError):
    """Something needs the internet (a hub download) and it is not reachable."""


class TrainingDivergedError(RobustftError):
    """The loss became NaN or infinite; the run directory is left intact."""
