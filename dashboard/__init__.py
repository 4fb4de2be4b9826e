"""Dash + dash-cytoscape provenance explorer (lineage DAG, version compare, DQL console)."""
