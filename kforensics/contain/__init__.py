"""Containment from findings: network, access, eviction, rotation; recorded for the watch."""
