"""Bridges to tools people already use; each imports its library only when used."""
