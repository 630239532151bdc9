"""Execution backends: where placed work actually runs."""

from .base import Backend, BackendError, BackendSet, BackendUnavailable, Launch, Loss, Status

__all__ = ["Backend", "BackendError", "BackendSet", "BackendUnavailable", "Launch", "Loss", "Status"]
