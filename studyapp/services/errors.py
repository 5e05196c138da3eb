"""Errors raised by services; their messages are shown to users as they are."""


class StudyError(Exception):
    """Base class: a request the platform refuses, with a message naming the problem."""


class NotFound(StudyError):
    """A study, case, reader or assignment that does not exist."""


class PermissionDenied(StudyError):
    """The signed-in user may not see or change this object."""


class InvalidInput(StudyError):
    """Input that fails validation (a Likert value off the scale, an empty name, ...)."""
