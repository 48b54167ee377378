"""Kubernetes: an env instance as manifests (`render --format kubernetes|helm`) and the
`kubernetes` runtime that applies them with kubectl's server-side apply.

convert.py turns a Target into objects (pure), matrix.py says which Compose fields map
and refuses the others with their file and line, helm.py writes a chart with values per
env, apply.py runs the plan's steps through backends/runtime/kubernetes.py.
"""
