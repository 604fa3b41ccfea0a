"""Deployments of the stack."""
