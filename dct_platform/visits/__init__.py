"""Protocol visits and telehealth: the visit schedule of each trial, every patient's
planned visits, site staff availability, bookable slots, bookings with their video room,
calendar invitations and reminders, and the visit record.

Core, not a feature package: the home-nurse dispatch (logistics) plans its visits from the
same schedule. Modules: `models.py` the tables, `planning.py` planned visits from the
schedule, `slots.py` free slots (pure), `booking.py` booking rules, `rooms.py` video-room
providers, `calendar.py` iCalendar invitations.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    # Importing registers the tables on the platform's metadata.
    from dct_platform.visits import models  # noqa: F401
