"""The commands around training: run, evaluate, embed, retrieve, sweep, compare, doctor and the
`peftzoo` command over them all. The top layer: nothing in the library imports it.
"""
