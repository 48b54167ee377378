"""Releases and promotion (issue 5): versions, the reports gates read, gate decisions.

Everything here is pure: facts in (tags, report files' text, what is deployed), decisions out.
"""
