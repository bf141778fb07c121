"""Serve configs, cluster manifests and `ray job` entry points."""
