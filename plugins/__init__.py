"""Stoplight's code, one subpackage per capability.

- ``autolabel``: zero-shot detection into FiftyOne datasets
- ``common``: run records shared by every capability
"""
