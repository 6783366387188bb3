"""Containment: the cluster rebuilt from the log, NetworkPolicies proposed, validated, simulated."""
