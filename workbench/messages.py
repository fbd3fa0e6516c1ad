"""Messages that background threads post to the screens (threads never touch widgets)."""

from __future__ import annotations

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


class EngineExited(Message):
    def __init__(self, code: int):
        super().__init__()
        self.code = code
