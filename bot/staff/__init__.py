"""Sales staff: who is staff, web accounts and sessions, live handoff."""
