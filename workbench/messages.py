"""Messages that background threads post to the screens (threads never touch widgets)."""

from __future__ import annotations

import threading
from typing import Callable

from textual.message import Message


class EventsArrived(Message):
    """A batch of checked events from a follower; `key` is `main` or `other` (compare)."""

    def __init__(self, key: str, events: list[dict]):
        super().__init__()
        self.key, self.events = key, events


class FollowStatus(Message):
    def __init__(self, text: str):
        super().__init__()
        self.text = text


class EngineOutput(Message):
    """New lines of engine.log (a run this workbench started), read by LogTail's thread."""

    def __init__(self, lines: list[str]):
        super().__init__()
        self.lines = lines


class EngineExited(Message):
    def __init__(self, code: int):
        super().__init__()
        self.code = code


class Inbox:
    """Events from a follower thread, merged before they reach the screen (toolong's way with bursts):
    at most one EventsArrived waits in the screen's queue whatever the event rate, and the screen
    takes at most `per_take` events from it at a time, so a key waits behind one fold at most,
    also while a 200,000-event file is being read."""

    def __init__(self, key: str, post: Callable[[Message], None], per_take: int = 5000):
        self.key, self.post, self.per_take = key, post, per_take
        self._events: list[dict] = []
        self._posted = False
        self._lock = threading.Lock()

    def put(self, events: list[dict]) -> None:  # the follower's thread
        with self._lock:
            self._events += events
            if self._posted:
                return
            self._posted = True
        self.post(EventsArrived(self.key, []))

    def take(self) -> list[dict]:  # the UI thread, on EventsArrived
        with self._lock:
            batch, self._events = self._events[: self.per_take], self._events[self.per_take:]
            self._posted = bool(self._events)
        if self._posted:  # the rest after whatever else (a key) is queued
            self.post(EventsArrived(self.key, []))
        return batch
