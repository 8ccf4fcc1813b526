"""Leads: what prospects submit, the staff alerts about them, privacy and export."""
