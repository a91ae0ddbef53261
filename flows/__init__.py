"""Prefect flows over the selflearn library (deployments in ../prefect.yaml)."""
