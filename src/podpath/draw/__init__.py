"""Pictures of a node: the map of its pods, veths, bridges, overlay and uplinks, and a trace on it.

Public API:
    from podpath.draw.build import build_map, MapFilter    # snapshots -> NodeMap
    from podpath.draw.path import trace_path                # NodeMap + Branch -> TracePath
    from podpath.draw.dot import to_dot                     # NodeMap (+ TracePath) -> DOT text
    from podpath.draw.outline import outline                # NodeMap -> indented rows

The model is plain data (model.py); Graphviz's `dot` lays it out and draws the SVG,
run by the CLI (podpath.cli.draw), since the core starts no programs.
"""
