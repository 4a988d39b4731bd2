"""`kubeboot status`: the cluster as it is, compared with what the inventory declares (read-only).

Layers, from the edge inwards: ``remote`` (the connection the inventory gives for the first control plane, and the
one script that runs kubectl there), ``compare`` (pure: cluster objects and inventory in, per-node state and drift
out, with node_meta's own code for the desired labels and taints), ``report`` (table and JSON), ``cli``.
"""
