"""eDiary: questionnaires, schedules, entries and compliance."""
